"""Cloudflare answers seen through the gateway: named, not retried, backed off; cookies persist."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from tests.fixtures.daemon import free_port, memproxy, running_daemon, write_config
from tests.fixtures.fake_cloudflare import CHALLENGE_PAGE, COOKIE, serve_in_thread
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for(fake.base), litellm=False) as gateway:
        yield gateway


def client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0)


async def test_challenge_is_named_and_not_retried(gw: RunningGateway, fake: FakeProvider) -> None:
    fake.behaviour.fail_status = 403
    fake.behaviour.fail_body = CHALLENGE_PAGE.encode()
    fake.behaviour.fail_content_type = "text/html"
    fake.behaviour.fail_headers = {"cf-mitigated": "challenge", "server": "cloudflare"}
    async with client(gw) as oai:
        with pytest.raises(openai.PermissionDeniedError) as err:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert "Cloudflare challenged" in str(err.value)
    assert err.value.code == "cloudflare_challenge"
    assert len(fake.seen) == 1
    assert gw.sessions is not None
    [entry] = gw.sessions.snapshot()
    assert entry["last_verdict"] == "challenge"


async def test_blocked_503_page_is_not_retried(gw: RunningGateway, fake: FakeProvider) -> None:
    fake.behaviour.fail_status = 503
    fake.behaviour.fail_body = b"<html><title>503</title><body>Cloudflare</body></html>"
    fake.behaviour.fail_content_type = "text/html"
    fake.behaviour.fail_headers = {"server": "cloudflare", "cf-ray": "8f0c0ffee0000000-AMS"}
    async with client(gw) as oai:
        with pytest.raises(openai.APIStatusError) as err:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.status_code == 503
    assert err.value.code == "cloudflare_blocked"
    assert len(fake.seen) == 1


async def test_rate_limit_backs_off_the_upstream(gw: RunningGateway, fake: FakeProvider) -> None:
    fake.behaviour.fail_status = 429
    fake.behaviour.fail_headers = {"Retry-After": "30"}
    async with client(gw) as oai:
        with pytest.raises(openai.RateLimitError) as first:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert first.value.response.headers["retry-after"] == "30"
        fake.behaviour.fail_status = None
        with pytest.raises(openai.RateLimitError) as second:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert second.value.code == "upstream_rate_limited"
    assert 0 < int(second.value.response.headers["retry-after"]) <= 30
    assert len(fake.seen) == 1, "a backed-off upstream must not be called"


async def test_transient_503_is_retried(gw: RunningGateway, fake: FakeProvider) -> None:
    fake.behaviour.fail_status = 503
    fake.behaviour.fail_times = 1
    async with client(gw) as oai:
        reply = await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    assert len(fake.seen) == 2


@pytest.mark.serial
def test_cookie_survives_daemon_restart(memproxy_home: Path) -> None:
    port = free_port()
    with serve_in_thread() as cf:
        config = write_config(memproxy_home, cf.url)
        for _ in range(2):
            with running_daemon(memproxy_home, port, config) as status:
                oai = openai.OpenAI(base_url=status["url"] + "/v1", api_key="k", max_retries=0)
                oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
                sessions = memproxy(memproxy_home, "sessions", "--json", check=True).stdout
        answers = [r.answer for r in cf.api_requests()]
        assert answers == ["first-contact", "ok"], answers  # not "challenge" after restart
        assert cf.api_requests()[-1].valid_cookie
        issued = next(iter(cf.issued))
    listed = json.loads(sessions)
    assert [c["name"] for c in listed[0]["cookies"]] == [COOKIE]
    assert issued not in sessions
    jar = next((memproxy_home / "state" / "cookies").iterdir())
    assert jar.stat().st_mode & 0o777 == 0o600
    assert issued not in (memproxy_home / "logs" / "memproxy.log").read_text()
