"""GET /metrics: Prometheus text that parses, counts what was served, keys and all bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from memproxy_cli.observability.labels import OTHER
from memproxy_cli.observability.metrics import MAX_MODELS, GatewayMetrics
from memproxy_cli.observability.timeline import recall_outcome
from tests.fixtures.daemon import free_port
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway
from tests.fixtures.spend import make_row

CALLER_KEY = "sk-caller-secret-7d41c2"
MASTER_KEY = "mk-master-secret-93af02"
PROMPT = "prompt-canary-5521 tell me a secret"


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)], parsed with prometheus_client's own parser."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((dict(s.labels), s.value))
    return found


def total(text: str, name: str, **match: str) -> float:
    return sum(
        v
        for labels, v in samples(text).get(name, [])
        if all(labels.get(k) == want for k, want in match.items())
    )


async def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url + "/metrics", headers=headers) as r:
        return r.status, await r.text()


async def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def chat(url: str, n: int, stream: bool = False, **headers: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=url + "/v1", api_key=CALLER_KEY, max_retries=0, default_headers=headers
    ) as oai:
        for _ in range(n):
            if stream:
                got = await oai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True
                )
                [c async for c in got]
            else:
                await oai.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
                )


async def test_requests_tokens_and_latency_are_counted(fake: FakeProvider) -> None:
    config = config_for(fake.base)
    async with running_gateway(config, litellm=False) as gw:
        await chat(gw.url, 3, **{"x-memproxy-project": "alpha"})
        await chat(gw.url, 2, stream=True, **{"x-memproxy-project": "beta"})

        async def five() -> bool:
            _, text = await scrape(gw.url)
            return total(text, "memproxy_requests_total") == 5

        await until(five, "five requests counted")
        status, text = await scrape(gw.url)
    assert status == 200
    assert total(text, "memproxy_requests_total", project="alpha", status="ok") == 3
    assert total(text, "memproxy_requests_total", project="beta", client="openai-python") == 2
    assert total(text, "memproxy_requests_total", model="gpt-4o-mini") == 5
    assert total(text, "memproxy_tokens_total", project="alpha", type="input") == 3 * 11
    assert total(text, "memproxy_tokens_total", type="output") > 0
    assert total(text, "memproxy_request_duration_seconds_count", project="alpha") == 3
    inf = total(text, "memproxy_request_duration_seconds_bucket", project="alpha", le="+Inf")
    assert inf == 3
    assert total(text, "memproxy_time_to_first_byte_seconds_count", project="beta") == 2
    assert total(text, "memproxy_gateway_overhead_seconds_count") == 5
    assert total(text, "memproxy_requests_in_flight") == 0
    assert "memproxy_spend_queue_depth" in samples(text)
    assert CALLER_KEY not in text and PROMPT not in text


async def test_main_listener_metrics_need_the_master_key(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MP_TEST_MASTER", MASTER_KEY)
    metrics_port = free_port()
    config = config_for(
        fake.base,
        server={"master_key": "os.environ/MP_TEST_MASTER"},
        observability={"metrics_port": metrics_port},
    )
    async with running_gateway(config, litellm=False) as gw:
        refused, _ = await scrape(gw.url)
        status, text = await scrape(gw.url, {"Authorization": f"Bearer {MASTER_KEY}"})
        port_status, port_text = await scrape(f"http://127.0.0.1:{metrics_port}")
    assert refused == 401
    assert status == 200 and "# TYPE memproxy_requests_total counter" in text
    assert port_status == 200
    list(text_string_to_metric_families(port_text))
    assert MASTER_KEY not in text and MASTER_KEY not in port_text


async def test_the_metrics_port_refuses_what_a_web_page_sends(fake: FakeProvider) -> None:
    """The metrics port asks for no key, so on loopback it refuses a foreign Host name (DNS
    rebinding) and a foreign Origin, as the main listener does; Prometheus's own scrape passes."""
    metrics_port = free_port()
    config = config_for(fake.base, observability={"metrics_port": metrics_port})
    base = f"http://127.0.0.1:{metrics_port}"
    async with running_gateway(config, litellm=False):
        rebound = await scrape(base, {"Host": f"attacker.example:{metrics_port}"})
        foreign = await scrape(base, {"Origin": "https://attacker.example"})
        fetched = await scrape(base, {"Sec-Fetch-Site": "cross-site"})
        named = await scrape(f"http://localhost:{metrics_port}")
        plain = await scrape(base)
    for status, text in (rebound, foreign, fetched):
        assert status == 403
        assert "memproxy_requests_total" not in text
    assert "attacker.example" in rebound[1]
    assert named[0] == 200 and plain[0] == 200
    assert "# TYPE memproxy_requests_total counter" in plain[1]


def test_free_form_models_and_clients_are_bucketed() -> None:
    metrics = GatewayMetrics(known_models=["configured-model"])
    for i in range(MAX_MODELS + 40):
        metrics.observe(make_row(model=f"made-up-{i}", client=f"tool-{i % 3}"), "off")
    metrics.observe(make_row(model="configured-model"), "off")
    metrics.observe(make_row(status="something new"), "off")
    text = metrics.exposition()
    models = {labels["model"] for labels, _ in samples(text)["memproxy_requests_total"]}
    assert len(models) <= MAX_MODELS + 2  # the capped ones, "other" and the configured one
    assert OTHER in models and "configured-model" in models
    assert total(text, "memproxy_requests_total", model=OTHER) == 40 + 1  # made up, and 1 model
    assert total(text, "memproxy_requests_total", status=OTHER) == 1
    assert total(text, "memproxy_label_overflow_total") >= 40
    assert total(text, "memproxy_requests_total") == MAX_MODELS + 42


def test_memory_recalls_are_counted_by_outcome() -> None:
    metrics = GatewayMetrics()
    metrics.observe(make_row(memories_injected=3), recall_outcome(True, None, 3))
    metrics.observe(make_row(), recall_outcome(True, None, 0))
    metrics.observe(make_row(), recall_outcome(True, "timeout after 300 ms", 0))
    metrics.observe(make_row(), recall_outcome(True, "backend error: OSError", 0))
    metrics.observe(make_row(), recall_outcome(False, None, 0))  # no new user message
    text = metrics.exposition()
    for outcome in ("hit", "miss", "timeout", "error"):
        assert total(text, "memproxy_memory_recalls_total", outcome=outcome) == 1
    assert total(text, "memproxy_memory_recalls_total") == 4
    assert total(text, "memproxy_memories_injected_total", project="alpha") == 3


def test_label_values_are_escaped() -> None:
    metrics = GatewayMetrics()
    metrics.observe(make_row(model='we"ird\\model\nname', cost_usd=0.25), "off")
    parsed = samples(metrics.exposition())
    (labels, value) = parsed["memproxy_cost_usd_total"][0]
    assert labels["model"] == 'we"ird\\model\nname' and value == 0.25


def test_a_broken_gauge_does_not_break_the_scrape() -> None:
    metrics = GatewayMetrics()

    def broken() -> list[tuple[tuple[tuple[str, str], ...], float]]:
        raise RuntimeError("boom")

    metrics.add_gauge("memproxy_test_broken", "A gauge whose reader fails.", broken)
    metrics.add_gauge("memproxy_test_cooldowns", "Pluggable.", lambda: [((("d", "x"),), 1)])
    text = metrics.exposition()
    assert total(text, "memproxy_test_cooldowns", d="x") == 1
    assert "memproxy_test_broken" not in samples(text)


async def test_unknown_routes_are_counted_as_not_found(fake: FakeProvider) -> None:
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        async with aiohttp.ClientSession() as s, s.post(gw.url + "/v1/nothing-here", json={}) as r:
            assert r.status == 404

        async def counted() -> bool:
            _, text = await scrape(gw.url)
            return total(text, "memproxy_requests_total", status="not_found") == 1

        await until(counted, "the 404 counted")


async def test_a_backed_off_upstream_shows_as_a_cooldown(fake: FakeProvider) -> None:
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        await chat(gw.url, 1)
        assert gw.sessions is not None
        _, before = await scrape(gw.url)
        b = fake.behaviour  # the upstream's say-so: a 429 with Retry-After cools that key down
        b.fail_status, b.fail_times, b.fail_headers = 429, 1, {"Retry-After": "60"}
        with pytest.raises(openai.RateLimitError):
            await chat(gw.url, 1)
        _, after = await scrape(gw.url)
    assert total(before, "memproxy_upstream_cooldown", upstream=fake.base) == 0
    assert total(after, "memproxy_upstream_cooldown", upstream=fake.base) == 1
    assert "memproxy_spend_rows_total" in samples(after)
