"""Per-origin concurrency caps and a retry budget shared by all upstream calls."""

from __future__ import annotations

import random
from collections import defaultdict


class OriginLimiter:
    """At most `cap` requests in flight per origin; the excess is refused at once, not queued."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._inflight: defaultdict[str, int] = defaultdict(int)

    def try_acquire(self, origin: str) -> bool:
        if self._inflight[origin] >= self.cap:
            return False
        self._inflight[origin] += 1
        return True

    def release(self, origin: str) -> None:
        left = self._inflight[origin] - 1
        if left > 0:
            self._inflight[origin] = left
        else:
            del self._inflight[origin]

    def inflight(self, origin: str) -> int:
        return self._inflight.get(origin, 0)


class RetryBudget:
    """Retries may add at most `ratio` extra load (token bucket refilled by requests)."""

    def __init__(self, ratio: float, minimum: float = 10.0) -> None:
        self._ratio = ratio
        self._cap = max(minimum, 1.0)
        self._tokens = self._cap

    def on_request(self) -> None:
        self._tokens = min(self._cap, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def backoff_delay(attempt: int, retry_after: float | None, base: float = 0.25) -> float:
    """Full-jitter exponential backoff, or the upstream's Retry-After when it gave one."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0, base * (2**attempt))
