"""router_settings fallbacks and context_window_fallbacks behind the real gateway.

A fallback to a model of another provider is translated through LiteLLM; the allowed-model
policy and the budget apply to the fallback actually used, as to the model asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.fixtures.fake_messages import FakeMessages
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import rows_when

MESSAGES: Any = [{"role": "user", "content": "hi"}]
NOWHERE = "http://127.0.0.1:9"
OPENAI_TOO_LONG = orjson.dumps(
    {
        "error": {
            "message": "This model's maximum context length is 128000 tokens. However, your "
            "messages resulted in 131072 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
)
ANTHROPIC_TOO_LONG = orjson.dumps(
    {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 215000 tokens > 200000 maximum",
        },
    }
)


@pytest.fixture
async def fakes() -> AsyncIterator[list[FakeProvider]]:
    providers = [await FakeProvider().start() for _ in range(2)]
    for i, p in enumerate(providers):
        p.behaviour.reply = f"from fake {i}"
    yield providers
    for p in providers:
        await p.close()


@pytest.fixture
async def claude() -> AsyncIterator[FakeMessages]:
    fake = await FakeMessages().start()
    yield fake
    await fake.close()


def entry(model: str, provider: str, base: str, upstream: str | None = None) -> dict[str, Any]:
    return {
        "model_name": model,
        "litellm_params": {
            "model": f"{provider}/{upstream or model}",
            "api_base": base + ("/v1" if provider == "openai" else ""),
            "api_key": f"sk-{provider}-configured-0001",
        },
    }


def oai(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-caller-000001", max_retries=0)


def ant(gw: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-ant-caller-0001", max_retries=0)


def gpt_then_claude(gpt_base: str, claude_base: str, **extra: Any) -> Any:
    extra.setdefault("router_settings", {"fallbacks": [{"gpt-4o": ["claude-sonnet-4-6"]}]})
    return config_for(
        NOWHERE,
        model_list=[
            entry("gpt-4o", "openai", gpt_base),
            entry("claude-sonnet-4-6", "anthropic", claude_base),
        ],
        **extra,
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_model_falls_back_to_another_provider_translated(
    fake: FakeProvider, claude: FakeMessages, stream: bool
) -> None:
    fake.behaviour.fail_status = 503
    async with running_gateway(gpt_then_claude(fake.base, claude.base)) as gw:
        async with oai(gw) as client:
            if stream:
                chunks = await client.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, stream=True
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                )
            else:
                reply = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                text = reply.choices[0].message.content or ""
        [row] = await rows_when(1)
    assert text == claude.reply
    assert len(fake.seen) == 3  # gpt-4o: the call and its two retries (a 503 may pass)
    [sent] = claude.seen
    assert sent.headers["x-api-key"] == "sk-anthropic-configured-0001"
    assert row["status"] == "ok" and row["model"] == "claude-sonnet-4-6"
    assert row["provider"] == "litellm:anthropic"
    assert row["extra"]["fallback_from"] == "gpt-4o"
    assert row["extra"]["deployment"] == "claude-sonnet-4-6#0"
    assert row["extra"]["attempts"] == 4


async def test_an_anthropic_client_falls_back_to_an_openai_model(
    fakes: list[FakeProvider],
) -> None:
    a, b = fakes
    a.behaviour.fail_status = 529  # Anthropic's "overloaded"
    config = config_for(
        NOWHERE,
        model_list=[
            entry("claude-sonnet-4-6", "anthropic", a.base),
            entry("gpt-4o", "openai", b.base),
        ],
        router_settings={"fallbacks": [{"claude-sonnet-4-6": ["gpt-4o"]}], "num_retries": 0},
    )
    async with running_gateway(config) as gw:
        async with ant(gw) as client:
            reply = await client.messages.create(
                model="claude-sonnet-4-6", max_tokens=50, messages=MESSAGES
            )
        [row] = await rows_when(1)
    assert reply.content[0].type == "text" and reply.content[0].text == "from fake 1"
    assert len(a.seen) == 1 and b.seen[0].path == "/v1/chat/completions"
    assert row["model"] == "gpt-4o" and row["extra"]["fallback_from"] == "claude-sonnet-4-6"
    assert row["extra"]["attempts"] == 2


async def test_a_fallback_the_project_may_not_use_is_skipped(
    fake: FakeProvider, claude: FakeMessages
) -> None:
    fake.behaviour.fail_status = 503
    config = gpt_then_claude(fake.base, claude.base, projects={"*": {"allowed_models": ["gpt-4o"]}})
    async with running_gateway(config) as gw:
        async with oai(gw) as client:
            with pytest.raises(openai.APIStatusError) as err:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        [row] = await rows_when(1)
    assert err.value.status_code == 503
    assert claude.seen == []
    assert row["model"] == "gpt-4o" and "fallback_from" not in row["extra"]


async def test_the_budget_counts_what_the_fallback_cost(
    fake: FakeProvider, claude: FakeMessages
) -> None:
    fake.behaviour.fail_status = 503
    config = gpt_then_claude(
        fake.base,
        claude.base,
        pricing={"claude-sonnet-4-6": {"input_cost_per_token": 1.0, "output_cost_per_token": 1.0}},
        budgets={"*": {"daily_usd": 5.0}},
        router_settings={"fallbacks": [{"gpt-4o": ["claude-sonnet-4-6"]}], "num_retries": 0},
    )
    async with running_gateway(config) as gw:
        async with oai(gw) as client:
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            [row] = await rows_when(1)
            with pytest.raises(openai.RateLimitError) as err:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert row["model"] == "claude-sonnet-4-6" and row["cost_usd"] >= 12.0  # Claude's prices
    assert err.value.code == "budget_exceeded"
    assert len(claude.seen) == 1


async def test_a_context_window_error_moves_to_the_bigger_model(
    fakes: list[FakeProvider],
) -> None:
    small, big = fakes
    small.behaviour.fail_status, small.behaviour.fail_body = 400, OPENAI_TOO_LONG
    config = config_for(
        NOWHERE,
        model_list=[
            entry("gpt-4o-mini", "openai", small.base),
            entry("gpt-4o", "openai", big.base),
        ],
        router_settings={"context_window_fallbacks": [{"gpt-4o-mini": ["gpt-4o"]}]},
    )
    async with running_gateway(config, litellm=False) as gw:
        async with oai(gw) as client:
            reply = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        [row] = await rows_when(1)
    assert reply.choices[0].message.content == "from fake 1"
    assert len(small.seen) == 1, "the same window on a retry would say the same"
    assert big.seen[0].body["model"] == "gpt-4o"
    assert row["model"] == "gpt-4o" and row["extra"]["fallback_from"] == "gpt-4o-mini"
    assert row["extra"]["attempts"] == 2


async def test_a_context_window_error_without_its_own_fallback_reaches_the_client(
    fakes: list[FakeProvider],
) -> None:
    small, big = fakes
    small.behaviour.fail_status, small.behaviour.fail_body = 400, OPENAI_TOO_LONG
    config = config_for(
        NOWHERE,
        model_list=[
            entry("gpt-4o-mini", "openai", small.base),
            entry("gpt-4o", "openai", big.base),
        ],
        router_settings={"fallbacks": [{"gpt-4o-mini": ["gpt-4o"]}]},
    )
    async with running_gateway(config, litellm=False) as gw:
        async with oai(gw) as client:
            with pytest.raises(openai.BadRequestError) as err:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert err.value.code == "context_length_exceeded"
    assert len(small.seen) == 1 and big.seen == []


async def test_anthropics_prompt_is_too_long_moves_to_the_context_fallback(
    fakes: list[FakeProvider],
) -> None:
    small, big = fakes
    small.behaviour.fail_status, small.behaviour.fail_body = 400, ANTHROPIC_TOO_LONG
    config = config_for(
        NOWHERE,
        model_list=[
            entry("claude-haiku-4-5", "anthropic", small.base),
            entry("claude-opus-4-6", "anthropic", big.base),
        ],
        router_settings={"context_window_fallbacks": [{"claude-haiku-4-5": ["claude-opus-4-6"]}]},
    )
    async with running_gateway(config, litellm=False) as gw:
        async with ant(gw) as client:
            reply = await client.messages.create(
                model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES
            )
        [row] = await rows_when(1)
    assert reply.content[0].type == "text" and reply.content[0].text == "from fake 1"
    assert len(small.seen) == 1 and big.seen[0].body["model"] == "claude-opus-4-6"
    assert row["model"] == "claude-opus-4-6"


async def test_a_fallback_never_takes_the_callers_key_to_another_upstream(
    fake: FakeProvider, claude: FakeMessages
) -> None:
    fake.behaviour.fail_status, fake.behaviour.fail_times = 503, 1  # gpt-4o's one attempt
    config = config_for(
        fake.base,  # gpt-4o without an entry: passthrough with the caller's own key
        upstreams={"openai": fake.base, "anthropic": claude.base},
        router_settings={
            "fallbacks": [{"gpt-4o": ["claude-sonnet-4-6", "gpt-4o-mini"]}],
            "num_retries": 0,
        },
    )
    async with running_gateway(config) as gw:
        async with oai(gw) as client:
            reply = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        [row] = await rows_when(1)
    assert claude.seen == [], "the caller's OpenAI key must not go to Anthropic"
    # gpt-4o-mini on the same upstream, where the caller's key was going anyway, may serve.
    assert reply.choices[0].message.content == "Hello from the fake upstream."
    assert [s.body["model"] for s in fake.seen] == ["gpt-4o", "gpt-4o-mini"]
    assert row["model"] == "gpt-4o-mini" and row["extra"]["fallback_from"] == "gpt-4o"
    assert {s.headers["authorization"] for s in fake.seen} == {"Bearer sk-caller-000001"}


async def test_a_fallback_in_cooldown_leaves_the_models_own_error(
    fakes: list[FakeProvider],
) -> None:
    a, b = fakes
    a.behaviour.fail_status = 500
    b.behaviour.fail_status, b.behaviour.fail_headers = 429, {"Retry-After": "60"}
    config = config_for(
        NOWHERE,
        model_list=[entry("gpt-4o", "openai", a.base), entry("gpt-4o-mini", "openai", b.base)],
        router_settings={"fallbacks": [{"gpt-4o": ["gpt-4o-mini"]}]},
    )
    async with running_gateway(config, litellm=False) as gw:
        async with oai(gw) as client:
            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(openai.InternalServerError) as err:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert err.value.status_code == 500 and "fake failure" in err.value.message
    assert len(b.seen) == 1  # cooling down after its Retry-After: not called again


@pytest.mark.parametrize("stream", [False, True])
async def test_a_translated_deployment_that_fails_is_retried_on_the_next(
    fakes: list[FakeProvider], stream: bool
) -> None:
    a, b = fakes
    a.behaviour.fail_status = 529
    claude_a, claude_b = (entry("claude-sonnet-4-6", "anthropic", f.base) for f in fakes)
    claude_a["litellm_params"]["weight"] = 1  # the first, while healthy; the second its standby
    config = config_for(NOWHERE, model_list=[claude_a, claude_b])
    async with running_gateway(config) as gw:
        async with oai(gw) as client:
            if stream:
                chunks = await client.chat.completions.create(
                    model="claude-sonnet-4-6", messages=MESSAGES, stream=True
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                )
            else:
                reply = await client.chat.completions.create(
                    model="claude-sonnet-4-6", messages=MESSAGES
                )
                text = reply.choices[0].message.content or ""
        [row] = await rows_when(1)
    assert text == "from fake 1"
    assert (len(a.seen), len(b.seen)) == (1, 1)
    assert row["extra"]["deployment"] == "claude-sonnet-4-6#1"
    assert row["provider"] == "litellm:anthropic"
