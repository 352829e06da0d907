"""Budgets: in-memory checks, seeding from the store, one shared budget through real Redis,
and Redis down or hanging costing next to nothing."""

from __future__ import annotations

import time

import redis

from memproxy_cli.budget.breaker import CircuitBreaker
from memproxy_cli.budget.guard import BudgetGuard, period_keys
from memproxy_cli.budget.recall_cache import RecallCache
from memproxy_cli.config import Config, parse_config
from memproxy_cli.paths import Paths
from memproxy_cli.store.queries import open_queries
from memproxy_cli.store.writer import SpendWriter
from tests.fixtures.spend import make_row, wait_until

BUDGETS = """
budgets:
  alpha: {daily_usd: 1.0, monthly_usd: 5.0}
  beta: {monthly_usd: 2.0}
"""
# Generous: a blocking Redis call would cost 50 ms each, i.e. 2.5 s for these 50 requests.
HOT_PATH_DEADLINE_S = 1.0


def _config() -> Config:
    return parse_config(BUDGETS)


def test_limits_in_memory(paths: Paths) -> None:
    guard = BudgetGuard(_config(), paths)
    now = 1_790_000_000.0
    assert guard.check("alpha", now) is None
    guard.add("alpha", 0.6, now)
    assert guard.check("alpha", now) is None
    guard.add("alpha", 0.4, now)
    verdict = guard.check("alpha", now)
    assert verdict is not None and verdict.period == "daily"
    assert "'alpha'" in verdict.message and "daily budget" in verdict.message
    assert "$1.00" in verdict.message
    assert guard.check("alpha", now + 86_400) is None  # a new day
    guard.add("beta", 2.5, now)
    beta = guard.check("beta", now + 86_400)
    assert beta is not None and beta.period == "monthly"
    assert guard.check("gamma", now) is None  # no budget configured
    assert guard.check(None, now) is None


def test_seeded_from_the_store(store_url: str | None, paths: Paths) -> None:
    now = time.time()
    writer = SpendWriter(store_url, paths)
    writer.start()
    writer.submit(make_row(project="alpha", started_at=now, cost_usd=0.7))
    writer.submit(make_row(project="alpha", started_at=now, cost_usd=0.4))
    writer.submit(make_row(project="beta", started_at=now - 40 * 86_400, cost_usd=9.0))
    writer.close()
    guard = BudgetGuard(_config(), paths)
    guard.seed_from_store(open_queries(store_url, paths), now)
    verdict = guard.check("alpha", now)
    assert verdict is not None and round(verdict.spent_usd, 6) == 1.1
    assert guard.check("beta", now) is None  # that spend was in an earlier month


def test_writer_hook_feeds_the_guard(paths: Paths) -> None:
    guard = BudgetGuard(_config(), paths)
    writer = SpendWriter(None, paths)
    writer.on_commit(lambda rows: [guard.add(r.project, r.cost_usd, r.started_at) for r in rows])
    writer.start()
    writer.submit(make_row(project="alpha", cost_usd=1.5))
    writer.close()
    assert guard.check("alpha") is not None


async def test_two_instances_share_one_budget(redis_url: str, paths: Paths) -> None:
    one = BudgetGuard(_config(), paths, redis_url, refresh_interval_s=0.05)
    two = BudgetGuard(_config(), paths, redis_url, refresh_interval_s=0.05)
    await one.start()
    await two.start()
    try:
        now = time.time()
        one.add("alpha", 0.6, now)
        two.add("alpha", 0.6, now)
        assert one.check("alpha", now) is None  # neither instance alone is over the limit
        assert two.check("alpha", now) is None
        wait_until(lambda: one.check("alpha") is not None, what="instance one sees shared spend")
        wait_until(lambda: two.check("alpha") is not None, what="instance two sees shared spend")
    finally:
        await one.close()
        await two.close()
    client = redis.Redis.from_url(redis_url)
    day_key, month_key = period_keys("alpha", now)
    assert round(float(client.get(day_key) or 0), 6) == 1.2
    assert round(float(client.get(month_key) or 0), 6) == 1.2
    assert 0 < client.ttl(day_key) <= 2 * 86_400
    assert 2 * 86_400 < client.ttl(month_key) <= 35 * 86_400
    client.close()


def _hot_path_seconds(guard: BudgetGuard) -> float:
    started = time.perf_counter()
    for _ in range(50):
        guard.check("alpha")
        guard.add("alpha", 0.03)
    return time.perf_counter() - started


async def test_redis_down_falls_back_to_local_counters(closed_port: int, paths: Paths) -> None:
    guard = BudgetGuard(_config(), paths, f"redis://127.0.0.1:{closed_port}/0")
    await guard.start()
    try:
        assert _hot_path_seconds(guard) < HOT_PATH_DEADLINE_S
        wait_until(lambda: guard.breaker.is_open, what="breaker opens")
        assert guard.check("alpha") is not None  # 50 x 0.03 = 1.5 > 1.0, counted locally
    finally:
        started = time.perf_counter()
        await guard.close()
        assert time.perf_counter() - started < 5.0


async def test_redis_hanging_costs_a_bounded_time(hanging_server: int, paths: Paths) -> None:
    breaker = CircuitBreaker(threshold=2, open_s=60)
    guard = BudgetGuard(_config(), paths, f"redis://127.0.0.1:{hanging_server}/0", breaker=breaker)
    await guard.start()
    try:
        assert _hot_path_seconds(guard) < HOT_PATH_DEADLINE_S
        wait_until(lambda: breaker.is_open, what="breaker opens on a silent server")
        assert guard.sync_once() is False  # open breaker: skipped
        assert guard.check("alpha") is not None  # local counters: 1.5 > 1.0
    finally:
        await guard.close()


async def test_recall_cache_round_trip(redis_url: str) -> None:
    cache = RecallCache(redis_url, timeout_s=0.5)
    try:
        assert await cache.get("proj:alpha", "what db?", 5) is None
        memories = [{"id": "m1", "text": "uses PostgreSQL"}]
        assert await cache.set("proj:alpha", "what db?", 5, memories, ttl_s=60)
        assert await cache.get("proj:alpha", "what db?", 5) == memories
        assert await cache.get("proj:alpha", "what db?", 6) is None
        assert await cache.get("proj:beta", "what db?", 5) is None
    finally:
        await cache.close()


async def test_recall_cache_hanging_redis_is_a_quick_miss(hanging_server: int) -> None:
    cache = RecallCache(f"redis://127.0.0.1:{hanging_server}/0")
    try:
        started = time.perf_counter()
        for _ in range(5):
            assert await cache.get("p", "q", 3) is None
            assert await cache.set("p", "q", 3, ["x"]) is False
        # two misses at ~0.1 s open the breaker; the rest return at once
        assert time.perf_counter() - started < HOT_PATH_DEADLINE_S
        assert cache.breaker.is_open
    finally:
        await cache.close()


async def test_two_gateways_on_one_postgres_and_one_redis(
    postgres_url: str, redis_url: str, paths: Paths
) -> None:
    """Each instance: its own writer and guard; one store, one budget."""
    instances = []
    for _ in range(2):
        guard = BudgetGuard(_config(), paths, redis_url, refresh_interval_s=0.05)
        writer = SpendWriter(postgres_url, paths)
        writer.on_commit(lambda rows, g=guard: [g.add(r.project, r.cost_usd) for r in rows])
        await guard.start()
        writer.start()
        instances.append((writer, guard))
    try:
        for writer, _ in instances:
            for _ in range(3):
                writer.submit(make_row(project="alpha", cost_usd=0.2))
        for _, guard in instances:
            wait_until(lambda g=guard: g.check("alpha") is not None, what="shared budget hit")
            assert round(guard.spent("alpha")[0], 6) == 1.2
    finally:
        for writer, guard in instances:
            writer.close()
            await guard.close()
    [total] = open_queries(postgres_url, paths).spend_totals(by="project")
    assert total["requests"] == 6 and round(total["cost_usd"], 6) == 1.2
    fresh = BudgetGuard(_config(), paths)
    fresh.seed_from_store(open_queries(postgres_url, paths))
    assert fresh.check("alpha") is not None
