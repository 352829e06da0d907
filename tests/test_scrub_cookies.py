"""Cookie values of an upstream's session are scrubbed from its error bodies, like keys."""

from __future__ import annotations

import aiohttp
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

COOKIE = "edgeSession0123456789"  # no secret-looking prefix: only the jar knows it is one


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", "gpt-4o-mini"),
        ("/v1/messages", "claude-sonnet-4-5"),
        ("/v1/messages/count_tokens", "claude-sonnet-4-5"),
    ],
)
async def test_cookie_values_never_come_back_in_an_error_body(
    fake: FakeProvider, path: str, model: str
) -> None:
    fake.behaviour.fail_status = 403
    fake.behaviour.fail_headers = {"Set-Cookie": f"__cf_bm={COOKIE}; Path=/; HttpOnly"}
    fake.behaviour.fail_body = (
        b'{"error": {"message": "request with cookie __cf_bm=' + COOKIE.encode() + b' refused"}}'
    )
    body = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        running_gateway(config_for(fake.base), litellm=False) as gw,
        aiohttp.ClientSession() as http,
    ):
        answers = []
        for _ in range(2):  # the first answer sets the cookie, the second finds it in the jar
            async with http.post(gw.url + path, json=body) as resp:
                answers.append((resp.status, await resp.text()))
    for status, text in answers:
        assert status == 403
        assert COOKIE not in text
        assert "__cf_bm=[REDACTED]" in text
