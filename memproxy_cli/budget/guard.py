"""BudgetGuard: per-project daily and monthly USD limits checked in memory on the hot path.

`check` and `add` never touch the network or the store. With `redis_url`, a background thread
adds this instance's spend to shared keys (INCRBYFLOAT, atomic) and pulls the shared totals back,
so several instances enforce one budget; when Redis is down or hanging, a circuit breaker skips it
and the local counters carry on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from memproxy_cli.budget.breaker import CircuitBreaker
from memproxy_cli.config_model import DEFAULT_POLICY

if TYPE_CHECKING:
    import redis

    from memproxy_cli.config import Budget, Config
    from memproxy_cli.paths import Paths
    from memproxy_cli.store.queries import SpendQueries

log = logging.getLogger(__name__)

KEY_PREFIX = "memproxy:budget:"
_DAY_TTL_S = 2 * 86_400
_MONTH_TTL_S = 35 * 86_400


@dataclass(frozen=True)
class BudgetVerdict:
    """A project over its limit: what the gateway turns into a 429."""

    project: str
    period: Literal["daily", "monthly"]
    limit_usd: float
    spent_usd: float

    @property
    def message(self) -> str:
        resets = "00:00 UTC" if self.period == "daily" else "the 1st of next month (UTC)"
        who = (
            "requests outside a budgeted project have reached the default"
            if self.project == DEFAULT_POLICY
            else f"project {self.project!r} has reached its"
        )
        return (
            f"{who} {self.period} budget: "
            f"${self.spent_usd:.2f} spent of ${self.limit_usd:.2f}; it resets at {resets}"
        )


def period_keys(project: str, when: float) -> tuple[str, str]:
    """The Redis keys (also the local counter keys) of a project's UTC day and month."""
    return _period_keys(project, int(when // 86_400))


@lru_cache(maxsize=1024)
def _period_keys(project: str, day_number: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(day_number * 86_400, UTC)
    base = f"{KEY_PREFIX}{project}:"
    return base + moment.strftime("%Y-%m-%d"), base + moment.strftime("%Y-%m")


def _ttl(key: str) -> int:
    return _MONTH_TTL_S if len(key.rsplit(":", 1)[1]) == len("YYYY-MM") else _DAY_TTL_S


class BudgetGuard:
    def __init__(
        self,
        config: Config,
        paths: Paths,
        redis_url: str | None = None,
        *,
        refresh_interval_s: float = 1.0,
        timeout_s: float = 0.05,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._budgets: dict[str, Budget] = dict(config.budgets)
        self._paths = paths
        self._redis_url = redis_url
        self._refresh_s = refresh_interval_s
        self._timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker()
        self._local: dict[str, float] = defaultdict(float)
        self._shared: dict[str, float] = {}
        self._pending: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: redis.Redis | None = None

    def reconfigure(self, config: Config) -> None:
        """Apply reloaded budgets; counters carry on."""
        self._budgets = dict(config.budgets)

    # --- hot path ---

    def check(self, project: str | None, now: float | None = None) -> BudgetVerdict | None:
        """A verdict when the project is at or over a limit; None otherwise. In memory only."""
        budget = self._budgets.get(project) if project else None
        if budget is None or project is None:
            return None
        day_key, month_key = period_keys(project, time.time() if now is None else now)
        for period, key, limit in (
            ("daily", day_key, budget.daily_usd),
            ("monthly", month_key, budget.monthly_usd),
        ):
            if limit is None:
                continue
            spent = self._spent(key)
            if spent >= limit:
                return BudgetVerdict(project, period, limit, spent)  # type: ignore[arg-type]
        return None

    def _spent(self, key: str) -> float:
        with self._lock:
            return max(self._local.get(key, 0.0), self._shared.get(key, 0.0))

    def add(self, project: str | None, cost_usd: float | None, when: float | None = None) -> None:
        """Count spend (thread-safe, never blocks on the network)."""
        if not project or not cost_usd or cost_usd <= 0:
            return
        keys = period_keys(project, time.time() if when is None else when)
        with self._lock:
            for key in keys:
                self._local[key] += cost_usd
                if self._redis_url:
                    self._pending[key] += cost_usd
        if self._redis_url:
            self._wake.set()

    def spent(self, project: str, now: float | None = None) -> tuple[float, float]:
        """(today, this month) in USD as this instance sees it."""
        day_key, month_key = period_keys(project, time.time() if now is None else now)
        return self._spent(day_key), self._spent(month_key)

    # --- start-up ---

    def seed_from_store(self, queries: SpendQueries, now: float | None = None) -> None:
        """Load today's and this month's totals per project from the store's daily aggregates."""
        moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        day = queries.project_costs(moment.strftime("%Y-%m-%d"))
        month = queries.project_costs(moment.strftime("%Y-%m-01"))
        with self._lock:
            for period, costs in ((f"{moment:%Y-%m-%d}", day), (f"{moment:%Y-%m}", month)):
                for name, cost in self._by_budget(costs).items():
                    self._local[f"{KEY_PREFIX}{name}:{period}"] = cost

    def _by_budget(self, costs: dict[str, float]) -> dict[str, float]:
        """Spend per budget name: a project's own, or the default one shared by the rest."""
        totals: dict[str, float] = defaultdict(float)
        for project, cost in costs.items():
            if project in self._budgets or DEFAULT_POLICY not in self._budgets:
                totals[project] += cost
            else:
                totals[DEFAULT_POLICY] += cost
        return totals

    async def start(self) -> None:
        self.start_background()

    async def close(self) -> None:
        await asyncio.to_thread(self.stop_background)

    def start_background(self) -> None:
        if not self._redis_url or self._thread is not None:
            return
        from memproxy_cli.budget.redis_client import sync_client

        self._client = sync_client(self._redis_url, self._timeout_s)
        self._thread = threading.Thread(target=self._run, name="memproxy-budget", daemon=True)
        self._thread.start()

    def stop_background(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        if self._client is not None:
            self._client.close()

    # --- background sync with Redis ---

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sync_once()
            self._wake.wait(self._refresh_s)
            self._wake.clear()
        self.sync_once()  # last chance to hand over what is pending

    def sync_once(self) -> bool:
        """Push pending increments, pull shared totals; False when Redis was skipped or failed."""
        if self._client is None or not self.breaker.allow():
            return False
        try:
            self._push()
            self._pull()
        except Exception as exc:
            self.breaker.failure()
            log.debug("redis budget sync failed: %s", exc.__class__.__name__)
            return False
        self.breaker.success()
        return True

    def _push(self) -> None:
        assert self._client is not None
        with self._lock:
            batch = dict(self._pending)
            self._pending.clear()
        if not batch:
            return
        try:
            pipe = self._client.pipeline(transaction=True)
            for key, amount in batch.items():
                pipe.incrbyfloat(key, amount)
                pipe.expire(key, _ttl(key))
            totals = pipe.execute()[::2]
        except Exception:
            self._requeue(batch)  # a timeout may still have applied it; err on counting twice
            raise
        with self._lock:
            for key, total in zip(batch, totals, strict=True):
                self._shared[key] = float(total)

    def _requeue(self, batch: dict[str, float]) -> None:
        with self._lock:
            for key, amount in batch.items():
                self._pending[key] += amount

    def _pull(self) -> None:
        assert self._client is not None
        now = time.time()
        keys = [k for project in self._budgets for k in period_keys(project, now)]
        if not keys:
            return
        values = self._client.mget(keys)
        with self._lock:
            for key, value in zip(keys, values, strict=True):
                if value is not None:
                    self._shared[key] = float(value)
