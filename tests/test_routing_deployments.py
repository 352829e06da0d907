"""Several deployments of a model behind the real gateway: spread, retries, cooldowns, limits.

Fakes fail on cue (429 with Retry-After, 500, 503, a refused port, a first byte that never
comes); the official clients call the gateway; rows say which deployment answered and after
how many attempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from memproxy_cli.upstream.deployments import key_tag
from tests.fixtures.daemon import free_port
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import rows_when, until

MESSAGES: Any = [{"role": "user", "content": "hi"}]
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
async def fakes() -> AsyncIterator[list[FakeProvider]]:
    providers = [await FakeProvider().start() for _ in range(2)]
    for i, p in enumerate(providers):
        p.behaviour.reply = f"from deployment {i}"
    yield providers
    for p in providers:
        if p.behaviour.gate is not None:
            p.behaviour.gate.set()
        await p.close()


def deployment(base: str, model: str = "gpt-4o", **params: Any) -> dict[str, Any]:
    return {
        "model_name": model,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": base + "/v1",
            "api_key": "sk-configured-000001",
            **params,
        },
    }


def primary_and_standby(a: str, b: str, **extra: Any) -> Any:
    """Deployment 0 takes every call while healthy (weight 1); deployment 1 (no weight) is
    its standby, as in LiteLLM's simple-shuffle."""
    return config_for(NOWHERE, model_list=[deployment(a, weight=1), deployment(b)], **extra)


def oai(gw: RunningGateway, key: str = "sk-caller-000001") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


async def ask(gw: RunningGateway, stream: bool = False, model: str = "gpt-4o") -> str:
    async with oai(gw) as client:
        if not stream:
            reply = await client.chat.completions.create(model=model, messages=MESSAGES)
            return reply.choices[0].message.content or ""
        chunks = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


async def test_requests_spread_over_deployments_by_weight(fakes: list[FakeProvider]) -> None:
    a, b = fakes
    config = config_for(
        NOWHERE, model_list=[deployment(a.base, weight=3), deployment(b.base, weight=1)]
    )
    async with running_gateway(config, litellm=False) as gw:
        for _ in range(20):
            await asyncio.gather(*(ask(gw) for _ in range(10)))
        rows = await rows_when(200)
    assert len(a.seen) + len(b.seen) == 200
    # 3:1 of 200 is 150 for deployment 0 (sd 6): the bounds are 8 sd away, so never flaky.
    assert 100 <= len(a.seen) <= 190
    used = {r["extra"]["deployment"] for r in rows}
    assert used == {"gpt-4o#0", "gpt-4o#1"}
    assert sum(r["extra"]["deployment"] == "gpt-4o#0" for r in rows) == len(a.seen)
    assert {r["extra"]["attempts"] for r in rows} == {1}
    assert a.seen[0].headers["authorization"] == "Bearer sk-configured-000001"


async def test_429_moves_to_the_other_deployment_and_cools_the_first(
    fakes: list[FakeProvider],
) -> None:
    a, b = fakes
    a.behaviour.fail_status, a.behaviour.fail_headers = 429, {"Retry-After": "30"}
    async with running_gateway(primary_and_standby(a.base, b.base), litellm=False) as gw:
        assert await ask(gw) == "from deployment 1"
        [cooldown] = gw.state.deployments.cooldowns()
        assert await ask(gw) == "from deployment 1"
        first, second = await rows_when(2)
    assert len(a.seen) == 1, "a deployment in cooldown is not called"
    assert len(b.seen) == 2
    assert cooldown["deployment"] == "gpt-4o#0" and cooldown["reason"] == "429"
    assert cooldown["key_hash"] is None  # a configured key: one scope for every caller
    assert 25 < cooldown["seconds_left"] <= 30
    assert first["status"] == "ok" and first["extra"]["deployment"] == "gpt-4o#1"
    assert first["extra"]["attempts"] == 2
    assert first["extra"]["upstream"].startswith("openai/gpt-4o@127.0.0.1:")
    assert second["extra"]["attempts"] == 1


FAILURES = ["500", "503", "refused", "slow first byte"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("failure", FAILURES)
async def test_a_failure_before_the_first_byte_is_retried_on_another_deployment(
    fakes: list[FakeProvider], failure: str, stream: bool
) -> None:
    a, b = fakes
    base = a.base
    if failure == "refused":
        base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    elif failure == "slow first byte":
        a.behaviour.gate = asyncio.Event()  # never answers within the timeouts below
    else:
        a.behaviour.fail_status = int(failure)
    server = {"request_timeout_s": 1, "stream_idle_timeout_s": 1}
    async with running_gateway(
        primary_and_standby(base, b.base, server=server), litellm=False
    ) as gw:
        reply = await ask(gw, stream)
        [row] = await rows_when(1)
    assert "from deployment 1" in reply
    assert len(b.seen) == 1
    assert row["status"] == "ok"
    assert row["extra"]["deployment"] == "gpt-4o#1" and row["extra"]["attempts"] == 2


async def test_a_stream_is_never_retried_after_its_first_byte(fakes: list[FakeProvider]) -> None:
    a, b = fakes
    a.behaviour.hang_after_chunks = 2
    config = primary_and_standby(a.base, b.base, server={"stream_idle_timeout_s": 1})
    async with running_gateway(config, litellm=False) as gw:
        async with aiohttp.ClientSession() as http:
            body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
            async with http.post(gw.url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                text = (await asyncio.wait_for(resp.read(), 20)).decode()
        [row] = await rows_when(1)
    assert "chatcmpl-fake" in text and "upstream stream went idle" in text
    assert "deployment 1" not in text
    assert len(a.seen) == 1 and b.seen == []
    assert row["status"] == "upstream_timeout" and row["extra"]["attempts"] == 1


async def test_every_deployment_failing_answers_with_the_last_failure(
    fakes: list[FakeProvider],
) -> None:
    for fake in fakes:
        fake.behaviour.fail_status = 500
    config = primary_and_standby(fakes[0].base, fakes[1].base)
    async with running_gateway(config, litellm=False) as gw:
        async with oai(gw) as client:
            with pytest.raises(openai.InternalServerError) as err:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        [row] = await rows_when(1)
    assert err.value.status_code == 500 and "fake failure" in err.value.message
    assert [len(f.seen) for f in fakes] == [1, 1]  # a 500 is not retried on the same one
    assert row["extra"]["attempts"] == 2 and row["status"] == "error"


async def test_one_callers_429_never_blocks_another_caller_or_model(fake: FakeProvider) -> None:
    b = fake.behaviour
    b.fail_status, b.fail_times, b.fail_headers = 429, 1, {"Retry-After": "30"}
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        async with oai(gw, "sk-alice-00000001") as alice, oai(gw, "sk-bob-000000002") as bob:
            with pytest.raises(openai.RateLimitError) as first:
                await alice.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert first.value.response.headers["retry-after"] == "30"  # the upstream's own
            with pytest.raises(openai.RateLimitError) as again:
                await alice.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert len(fake.seen) == 1, "Retry-After is honoured for alice on gpt-4o-mini"
            assert again.value.code == "upstream_rate_limited"
            assert 0 < int(again.value.response.headers["retry-after"]) <= 30
            other_user = await bob.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            other_model = await alice.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        [cooldown] = gw.state.deployments.cooldowns()
    assert other_user.choices[0].message.content and other_model.choices[0].message.content
    assert len(fake.seen) == 3
    assert cooldown["model"] == "gpt-4o-mini" and cooldown["origin"] == fake.base
    assert cooldown["key_hash"] == key_tag("sk-alice-00000001")


async def test_anthropic_callers_are_cooled_down_one_key_at_a_time(fake: FakeProvider) -> None:
    b = fake.behaviour
    b.fail_status, b.fail_times, b.fail_headers = 429, 1, {"Retry-After": "30"}
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        ant = anthropic.AsyncAnthropic
        async with (
            ant(base_url=gw.url, api_key="sk-ant-alice-0001", max_retries=0) as alice,
            ant(base_url=gw.url, api_key="sk-ant-bob-000002", max_retries=0) as bob,
        ):
            call: Any = {"model": "claude-sonnet-4-6", "max_tokens": 50, "messages": MESSAGES}
            with pytest.raises(anthropic.RateLimitError):
                await alice.messages.create(**call)
            with pytest.raises(anthropic.RateLimitError) as again:
                await alice.messages.create(**call)
            reply = await bob.messages.create(**call)
    assert "back off" in again.value.message
    assert reply.content[0].type == "text"
    assert len(fake.seen) == 2
    sent = fake.seen[1].headers  # bob's own credential, as his client sent it
    bob_key = (sent.get("x-api-key", ""), sent.get("authorization", "").removeprefix("Bearer "))
    assert "sk-ant-bob-000002" in bob_key


async def test_least_busy_sends_to_the_deployment_with_fewest_calls_in_flight(
    fakes: list[FakeProvider],
) -> None:
    for fake in fakes:
        fake.behaviour.gate = asyncio.Event()
    config = config_for(
        NOWHERE,
        model_list=[deployment(f.base) for f in fakes],
        router_settings={"routing_strategy": "least-busy"},
    )
    async with running_gateway(config, litellm=False) as gw:
        first = asyncio.create_task(ask(gw))
        await until(lambda: sum(len(f.seen) for f in fakes) == 1, what="the first call")
        second = asyncio.create_task(ask(gw))
        await until(lambda: [len(f.seen) for f in fakes] == [1, 1], what="one call each")
        for fake in fakes:
            assert fake.behaviour.gate is not None
            fake.behaviour.gate.set()
        await asyncio.gather(first, second)


async def test_rpm_limit_sends_the_excess_elsewhere_then_refuses(
    fakes: list[FakeProvider],
) -> None:
    a, b = fakes
    config = config_for(NOWHERE, model_list=[deployment(a.base, rpm=2), deployment(b.base)])
    async with running_gateway(config, litellm=False) as gw:
        gw.state.deployments.clock = lambda: 600_000.0  # one minute throughout
        replies = [await ask(gw) for _ in range(3)]
    assert replies == ["from deployment 0"] * 2 + ["from deployment 1"]

    alone = config_for(NOWHERE, model_list=[deployment(a.base, rpm=1)])
    async with running_gateway(alone, litellm=False) as gw:
        gw.state.deployments.clock = lambda: 600_030.0
        await ask(gw)
        async with oai(gw) as client:
            with pytest.raises(openai.RateLimitError) as err:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert err.value.code == "upstream_rate_limited"
    assert err.value.response.headers["retry-after"] == "30"
    assert len(a.seen) == 3


async def test_deployments_each_send_their_own_key_and_model(fakes: list[FakeProvider]) -> None:
    a, b = fakes
    a.behaviour.fail_status = 503
    a.behaviour.fail_headers = {"Retry-After": "10"}
    config = config_for(
        NOWHERE,
        model_list=[
            deployment(a.base, weight=1, api_key="sk-key-of-a-000001"),
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o-2024-08-06",
                    "api_base": b.base + "/v1",
                    "api_key": "sk-key-of-b-000002",
                },
            },
        ],
    )
    async with running_gateway(config, litellm=False) as gw:
        await ask(gw)
    assert a.seen[0].headers["authorization"] == "Bearer sk-key-of-a-000001"
    assert a.seen[0].body["model"] == "gpt-4o"
    assert b.seen[0].headers["authorization"] == "Bearer sk-key-of-b-000002"
    assert b.seen[0].body["model"] == "gpt-4o-2024-08-06"
