"""Two gateway instances on one PostgreSQL and one Redis: one spend log, one shared budget."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from memproxy_cli.paths import get_paths
from memproxy_cli.store.queries import open_queries
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

PRICING = {"gpt-4o-mini": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}
MESSAGES: Any = [{"role": "user", "content": "hi"}]
TEAM = {"x-memproxy-project": "team"}


async def test_two_instances_share_store_and_budget(
    fake: FakeProvider, postgres_url: str, redis_url: str
) -> None:
    # Each request costs 0.025 USD; the budget allows one.
    config = config_for(
        fake.base,
        database_url=postgres_url,
        redis_url=redis_url,
        pricing=PRICING,
        budgets={"team": {"daily_usd": 0.03}},
    )
    async with (
        running_gateway(config, litellm=False) as one,
        running_gateway(config, litellm=False) as two,
    ):
        clients = [
            openai.AsyncOpenAI(
                base_url=gw.url + "/v1", api_key="k", max_retries=0, default_headers=TEAM
            )
            for gw in (one, two)
        ]
        await clients[0].chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        await clients[1].chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        # Together they spent 0.05 > 0.03: once the counters meet in Redis, both refuse.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        refused = [False, False]
        while not all(refused) and loop.time() < deadline:
            for i, client in enumerate(clients):
                if refused[i]:
                    continue
                try:
                    await client.chat.completions.create(model="memproxy/echo", messages=MESSAGES)
                except openai.RateLimitError as exc:
                    assert exc.code == "budget_exceeded"
                    refused[i] = True
            await asyncio.sleep(0.1)
        for client in clients:
            await client.close()
    assert refused == [True, True]
    rows = await asyncio.to_thread(open_queries(postgres_url, get_paths()).recent_rows, 50)
    upstream_rows = [r for r in rows if r["model"] == "gpt-4o-mini"]
    assert len(upstream_rows) == 2
    assert sum(r["cost_usd"] for r in upstream_rows) == pytest.approx(0.05)
