"""OpenAI routes end to end: official client -> real gateway app -> fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for(fake.base), litellm=False) as gateway:
        yield gateway


def client(gw: RunningGateway, key: str = "sk-caller-key-0001") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


async def test_plain_completion_passes_through(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as oai:
        raw = await oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        result = raw.parse()
    assert result.choices[0].message.content == "Hello from the fake upstream."
    assert result.usage is not None and result.usage.prompt_tokens == 11
    assert raw.headers["x-memproxy-request-id"].startswith("req_")
    assert float(raw.headers["x-memproxy-overhead-ms"]) >= 0
    seen = fake.seen[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-caller-key-0001"
    assert seen.headers["User-Agent"].startswith("AsyncOpenAI/Python ")  # the client's own
    assert seen.headers["Via"] == "1.1 memproxy"
    assert seen.headers["traceparent"].startswith("00-")


async def test_unknown_field_arrives_unchanged(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as oai:
        await oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"x_custom_field": {"nested": [1, 2, 3]}},
        )
    assert fake.seen[-1].body["x_custom_field"] == {"nested": [1, 2, 3]}


async def test_streaming_relays_chunks_and_strips_injected_usage(
    gw: RunningGateway, fake: FakeProvider
) -> None:
    async with client(gw) as oai:
        stream = await oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake upstream."
    assert all(c.usage is None for c in chunks), "usage chunk the client did not ask for leaked"
    # The gateway asked the upstream for usage so it can account for the call.
    assert fake.seen[-1].body["stream_options"] == {"include_usage": True}


async def test_streaming_with_include_usage_keeps_it(gw: RunningGateway) -> None:
    async with client(gw) as oai:
        stream = await oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].completion_tokens == 7


async def test_models_lists_echo(gw: RunningGateway) -> None:
    async with client(gw) as oai:
        models = await oai.models.list()
    assert "memproxy/echo" in [m.id for m in models.data]


async def test_echo_model_returns_upstream_view(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as oai:
        result = await oai.chat.completions.create(
            model="memproxy/echo", messages=[{"role": "user", "content": "ping"}]
        )
        stream = await oai.chat.completions.create(
            model="memproxy/echo", messages=[{"role": "user", "content": "ping"}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert '"content": "ping"' in (result.choices[0].message.content or "")
    assert streamed == result.choices[0].message.content
    assert fake.seen == []


async def test_unprefixed_route(gw: RunningGateway) -> None:
    oai = openai.AsyncOpenAI(base_url=gw.url, api_key="k", max_retries=0)
    async with oai:
        result = await oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert result.choices[0].message.content


async def test_bad_json_is_400_in_openai_shape(gw: RunningGateway) -> None:
    async with client(gw) as oai:
        with pytest.raises(openai.BadRequestError) as err:
            await oai.post(
                "/chat/completions",
                cast_to=object,
                content=b"{not json",
                options={"headers": {"Content-Type": "application/json"}},
            )
    body = err.value.body
    assert isinstance(body, dict) and "not valid JSON" in body["message"]
    assert body["type"] == "invalid_request_error"


async def test_unknown_model_is_404(gw: RunningGateway) -> None:
    async with client(gw) as oai:
        with pytest.raises(openai.NotFoundError) as err:
            await oai.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "hi"}]
            )
    assert "no-such-model" in str(err.value)


async def test_request_cannot_choose_upstream(gw: RunningGateway, fake: FakeProvider) -> None:
    async with client(gw) as oai:
        with pytest.raises(openai.BadRequestError) as err:
            await oai.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                extra_body={"api_base": "http://169.254.169.254/"},
            )
    assert "api_base" in str(err.value)
    assert fake.seen == []


async def test_upstream_error_relayed_without_key(gw: RunningGateway, fake: FakeProvider) -> None:
    fake.behaviour.fail_status = 401
    fake.behaviour.fail_body = (
        b'{"error": {"message": "Incorrect API key provided: sk-caller-key-0001", '
        b'"type": "invalid_request_error", "code": "invalid_api_key"}}'
    )
    async with client(gw) as oai:
        with pytest.raises(openai.AuthenticationError) as err:
            await oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    assert err.value.status_code == 401
    assert "sk-caller-key-0001" not in str(err.value.body)
    assert err.value.code == "invalid_api_key"


async def test_unreachable_upstream_is_502(fake: FakeProvider) -> None:
    config = config_for("http://127.0.0.1:9", server={"max_retries": 0})
    async with running_gateway(config, litellm=False) as gw, client(gw) as oai:
        with pytest.raises(openai.InternalServerError) as err:
            await oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    assert err.value.status_code == 502
    assert "cannot reach upstream" in str(err.value)


async def test_body_too_large_is_413(fake: FakeProvider) -> None:
    config = config_for(fake.base, server={"max_body_bytes": 2048})
    async with running_gateway(config, litellm=False) as gw, client(gw) as oai:
        with pytest.raises(openai.APIStatusError) as err:
            await oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 5000}]
            )
    assert err.value.status_code == 413
    assert fake.seen == []


async def test_configured_model_uses_its_params(fake: FakeProvider) -> None:
    config = config_for(
        "http://127.0.0.1:9",
        model_list=[
            {
                "model_name": "team-model",
                "litellm_params": {
                    "model": "openai/real-upstream-name",
                    "api_base": fake.base + "/v1",
                    "api_key": "os.environ/TEAM_KEY",
                },
            }
        ],
    )
    import os

    os.environ["TEAM_KEY"] = "sk-team-secret-123456"
    try:
        async with running_gateway(config, litellm=False) as gw, client(gw) as oai:
            await oai.chat.completions.create(
                model="team-model", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        del os.environ["TEAM_KEY"]
    seen = fake.seen[-1]
    assert seen.body["model"] == "real-upstream-name"
    assert seen.headers["Authorization"] == "Bearer sk-team-secret-123456"
