"""Exactly one spend row per request, whatever happened, with tokens and cost; budgets enforced."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import anthropic
import openai
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import rows_when

PRICING = {"gpt-4o-mini": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def client(gw: RunningGateway, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gw.url + "/v1",
        api_key="sk-secret-caller-1234",
        max_retries=0,
        default_headers=headers,
    )


async def test_one_row_per_outcome(fake: FakeProvider) -> None:
    config = config_for(
        fake.base, pricing=PRICING, server={"request_timeout_s": 1, "max_retries": 0}
    )
    async with running_gateway(config, litellm=False) as gw:
        async with client(gw, **{"x-memproxy-project": "alpha"}) as oai:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            stream = await oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            [c async for c in stream]
            fake.behaviour.fail_status = 500
            with pytest.raises(openai.InternalServerError):
                await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            fake.behaviour.fail_status = None
            fake.behaviour.gate = asyncio.Event()  # the upstream never answers
            with pytest.raises(openai.APIStatusError) as timeout:
                await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert timeout.value.status_code == 504
            fake.behaviour.gate.set()
        rows = await rows_when(4)
    by_status: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    assert sorted(r["stream"] for r in by_status["ok"]) == [False, True]
    for row in by_status["ok"]:
        assert (row["prompt_tokens"], row["completion_tokens"], row["cache_read_tokens"]) == (
            11,
            7,
            3,
        )
        assert row["cost_usd"] == pytest.approx(11 * 0.001 + 7 * 0.002)
        assert row["project"] == "alpha" and row["client"] == "openai-python"
        assert row["latency_ms"] > 0 and row["overhead_ms"] >= 0
    assert by_status["error"][0]["http_status"] == 500
    assert by_status["upstream_timeout"][0]["http_status"] == 504
    assert len({r["request_id"] for r in rows}) == 4
    assert "sk-secret-caller-1234" not in json.dumps(rows)


async def test_client_disconnect_mid_stream_is_recorded(fake: FakeProvider) -> None:
    fake.behaviour.chunk_delay_s = 0.2
    fake.behaviour.chunks = 20
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        async with client(gw) as oai:
            stream = await oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            async for _chunk in stream:
                break
            await stream.close()
        [row] = await rows_when(1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while fake.cancelled_streams == 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
    assert row["status"] == "client_disconnect"
    assert fake.cancelled_streams == 1, "the upstream stream must be cancelled too"


async def test_budget_exceeded_is_429_on_both_apis(fake: FakeProvider) -> None:
    config = config_for(
        fake.base,
        pricing=PRICING,
        budgets={"alpha": {"daily_usd": 0.01}},
    )
    async with running_gateway(config, litellm=False) as gw:
        async with client(gw, **{"x-memproxy-project": "alpha"}) as oai:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            with pytest.raises(openai.RateLimitError) as over:
                await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert "budget" in str(over.value) and over.value.code == "budget_exceeded"
        async with anthropic.AsyncAnthropic(
            base_url=gw.url,
            api_key="k",
            max_retries=0,
            default_headers={"x-memproxy-project": "alpha"},
        ) as ant:
            with pytest.raises(anthropic.RateLimitError) as over_ant:
                await ant.messages.create(model="claude-test-1", max_tokens=5, messages=MESSAGES)
        assert over_ant.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        async with client(gw, **{"x-memproxy-project": "beta"}) as oai:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(fake.seen) == 2


async def test_logs_command_reads_the_rows(fake: FakeProvider) -> None:
    async with running_gateway(config_for(fake.base), litellm=False) as gw, client(gw) as oai:
        await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        await rows_when(1)
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "memproxy_cli", "logs", "-n", "5", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    [row] = json.loads(out.stdout)
    assert row["model"] == "gpt-4o-mini" and row["status"] == "ok"
    assert row["endpoint"] == "/v1/chat/completions"
    assert row["trace_id"] and len(row["trace_id"]) == 32
