"""Health of deployments: which one serves a call, which are cooling down, rpm/tpm use.

A failure before any byte reached the client (connect error, timeout, 429, 5xx) cools the
deployment down for the caller key that met it: a deployment with a configured key is one
scope; one that sends the caller's own key is one scope per caller key, so one user's 429 never
blocks another user, or another model.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from memproxy_cli.config import RouterSettings
from memproxy_cli.upstream.deployments import Deployment, ModelGroup
from memproxy_cli.upstream.session_state import iso

MAX_COOLDOWN_S = 3600.0  # the longest Retry-After honoured (an upstream may send anything)
MAX_SAME_RETRY_AFTER_S = 5.0  # a longer Retry-After goes to the client, not into a sleep
_FAIL_WINDOW_S = 60.0  # allowed_fails counts failures per minute, as LiteLLM does
_MAX_SCOPES = 10_000  # caller keys come from clients: keep the tables bounded
_NO_IDS: frozenset[str] = frozenset()
_CONTEXT_ERROR = re.compile(
    rb"context_length_exceeded|context.window|maximum context length|prompt is too long"
    rb"|input is too long|too many (?:input )?tokens|exceeds? the (?:model's )?context",
    re.IGNORECASE,
)


@dataclass(slots=True)
class Failure:
    """Why an attempt did not answer the client, and what may be tried next."""

    status: int
    reason: str
    retry_after: float | None = None
    cools: bool = True  # counts against the deployment
    same_again: bool = False  # worth retrying the same deployment after a backoff
    context: bool = False  # the prompt is too long for the model: context_window_fallbacks
    answer: Any = None  # what the client gets when nothing else works (a response or an error)
    attempted: bool = True  # False: no deployment was free to try (all cooling down)


def is_context_error(text: bytes) -> bool:
    return _CONTEXT_ERROR.search(text[:8192]) is not None


def response_failure(
    status: int, body: bytes | None, retry_after: float | None, via_cloudflare: bool
) -> Failure | None:
    """A non-2xx upstream answer that another attempt may fix; None when it is final."""
    if status in (400, 413, 422) and body and is_context_error(body):
        return Failure(status, "context window exceeded", cools=False, context=True)
    if status == 429 or status >= 500:
        same = (
            status in (429, 503)
            and not via_cloudflare
            and (retry_after is None or retry_after <= MAX_SAME_RETRY_AFTER_S)
        )
        return Failure(status, str(status), retry_after, same_again=same)
    return None


def error_failure(
    status: int, code: str | None, message: str, retry_after: float | None
) -> Failure | None:
    """A GatewayError from a transport (nothing reached the client) another attempt may fix."""
    if code == "context_length_exceeded" or (
        status in (400, 413, 422) and is_context_error(message.encode())
    ):
        return Failure(status, "context window exceeded", cools=False, context=True)
    if code in ("upstream_busy", "translation_unavailable"):  # ours: try elsewhere, blame nobody
        return Failure(status, code, cools=False)
    if code == "upstream_unreachable":
        return Failure(status, "connect error", same_again=True)
    if code == "upstream_timeout":
        return Failure(status, "timeout")
    if status == 429 or status >= 500:
        same = (
            status in (429, 503)
            and not (code or "").startswith("cloudflare_")
            and (retry_after is None or retry_after <= MAX_SAME_RETRY_AFTER_S)
        )
        return Failure(status, str(status), retry_after, same_again=same)
    return None


@dataclass(slots=True)
class Cooldown:
    until: float
    reason: str
    deployment: Deployment
    model: str
    tag: str


@dataclass(slots=True)
class _Usage:
    """One deployment's calls in flight and its use in the current minute."""

    inflight: int = 0
    minute: int = 0
    requests: int = 0
    tokens: int = 0

    def this_minute(self, minute: int) -> _Usage:
        if self.minute != minute:
            self.minute, self.requests, self.tokens = minute, 0, 0
        return self


@dataclass(slots=True)
class _Fails:
    since: float
    count: int = 0


TagOf = Callable[[Deployment], str]


@dataclass
class DeploymentHealth:
    """Live state of every deployment: cooldowns per (deployment, caller key), rpm/tpm use,
    calls in flight; and the choice of a deployment for a call. Survives config reloads."""

    settings: RouterSettings = field(default_factory=RouterSettings)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.time
    _cooldowns: dict[tuple[str, str], Cooldown] = field(default_factory=dict)
    _cooling: dict[str, int] = field(default_factory=dict)  # deployment id -> scopes cooling
    _fails: dict[tuple[str, str], _Fails] = field(default_factory=dict)
    _usage: dict[str, _Usage] = field(default_factory=dict)

    def pick(
        self, group: ModelGroup, tag_of: TagOf, exclude: Collection[str] = _NO_IDS
    ) -> Deployment | None:
        """A healthy deployment not in `exclude`, by the routing strategy; None if none is."""
        deployments = group.deployments
        if len(deployments) == 1:
            only = deployments[0]
            if only.id in exclude or not self._usable(only, tag_of):
                return None
            return only
        healthy = [d for d in deployments if d.id not in exclude and self._usable(d, tag_of)]
        if len(healthy) <= 1:
            return healthy[0] if healthy else None
        if self.settings.routing_strategy == "least-busy":
            return self._least_busy(healthy)
        return self._shuffle(healthy)

    def _usable(self, d: Deployment, tag_of: TagOf) -> bool:
        if self._cooling and d.id in self._cooling and self.cooldown_left(d, tag_of(d)) > 0:
            return False
        if d.rpm is None and d.tpm is None:
            return True
        usage = self._usage.get(d.id)
        if usage is None:
            return True
        usage.this_minute(int(self.clock() // 60))
        if d.rpm is not None and usage.requests >= d.rpm:
            return False
        return d.tpm is None or usage.tokens < d.tpm

    def _shuffle(self, healthy: list[Deployment]) -> Deployment:
        """LiteLLM's simple-shuffle: by weight, else rpm, else tpm, else uniformly."""
        for weights in (
            [d.weight or 0.0 for d in healthy],
            [float(d.rpm or 0) for d in healthy],
            [float(d.tpm or 0) for d in healthy],
        ):
            if max(weights) > 0:
                return self.rng.choices(healthy, weights=weights)[0]
        return self.rng.choice(healthy)

    def _least_busy(self, healthy: list[Deployment]) -> Deployment:
        usage = self._usage
        loads = [usage[d.id].inflight if d.id in usage else 0 for d in healthy]
        least = min(loads)
        return self.rng.choice([d for d, n in zip(healthy, loads, strict=True) if n == least])

    def started(self, d: Deployment) -> None:
        usage = self._usage.get(d.id)
        if usage is None:
            usage = self._usage[d.id] = _Usage()
        usage.inflight += 1
        if d.rpm is not None:
            usage.this_minute(int(self.clock() // 60)).requests += 1

    def finished(self, d: Deployment, tokens: int = 0) -> None:
        usage = self._usage.get(d.id)
        if usage is None:
            return
        usage.inflight = max(0, usage.inflight - 1)
        if d.tpm is not None and tokens:
            usage.this_minute(int(self.clock() // 60)).tokens += tokens
        elif not usage.inflight and d.rpm is None and d.tpm is None:
            # Implicit deployments are named by clients: keep only what is in flight.
            del self._usage[d.id]

    def failed(self, group: ModelGroup, d: Deployment, tag: str, failure: Failure) -> None:
        """Count a failure of `d` for the caller key `tag`; cool it down when it is due.

        Retry-After cools that scope for as long as asked, always. Otherwise only a model with
        somewhere else to go cools down: a 429 at once, other failures past allowed_fails a
        minute, for cooldown_time (LiteLLM's rules; a lone deployment is never left out on a
        guess, its upstream answers for itself).
        """
        if not failure.cools:
            return
        settings = self.settings
        now = self.clock()
        if failure.retry_after is not None and failure.retry_after > 0:
            self._cool(group, d, tag, now + min(failure.retry_after, MAX_COOLDOWN_S), failure)
            return
        if not group.has_alternatives or settings.cooldown_time <= 0:
            return
        if failure.status != 429:
            scope = (d.id, tag)
            fails = self._fails.get(scope)
            if fails is None or now - fails.since > _FAIL_WINDOW_S:
                if len(self._fails) >= _MAX_SCOPES:
                    self._fails.clear()
                fails = self._fails[scope] = _Fails(now)
            fails.count += 1
            if fails.count <= settings.allowed_fails:
                return
            del self._fails[scope]
        self._cool(group, d, tag, now + settings.cooldown_time, failure)

    def _cool(
        self, group: ModelGroup, d: Deployment, tag: str, until: float, failure: Failure
    ) -> None:
        scope = (d.id, tag)
        current = self._cooldowns.get(scope)
        if current is not None:
            if current.until >= until:
                return  # a cooldown is never shortened
            current.until, current.reason = until, failure.reason
            return
        if len(self._cooldowns) >= _MAX_SCOPES:
            self._expire(self.clock())
            while len(self._cooldowns) >= _MAX_SCOPES:
                self._drop(next(iter(self._cooldowns)))
        self._cooldowns[scope] = Cooldown(until, failure.reason, d, group.model, tag)
        self._cooling[d.id] = self._cooling.get(d.id, 0) + 1

    def cooldown_left(self, d: Deployment, tag: str) -> float:
        """Seconds this deployment stays out for that caller key (0 when it is usable)."""
        scope = (d.id, tag)
        cooldown = self._cooldowns.get(scope)
        if cooldown is None:
            return 0.0
        left = cooldown.until - self.clock()
        if left <= 0:
            self._drop(scope)
            return 0.0
        return left

    def _drop(self, scope: tuple[str, str]) -> None:
        if self._cooldowns.pop(scope, None) is None:
            return
        left = self._cooling.get(scope[0], 0) - 1
        if left > 0:
            self._cooling[scope[0]] = left
        else:
            self._cooling.pop(scope[0], None)

    def _expire(self, now: float) -> None:
        for scope in [s for s, c in self._cooldowns.items() if c.until <= now]:
            self._drop(scope)

    def wait_s(self, group: ModelGroup, tag_of: TagOf) -> float:
        """Seconds until some deployment of the group may serve this caller again."""
        now = self.clock()
        waits = []
        for d in group.deployments:
            left = self.cooldown_left(d, tag_of(d))
            usage = self._usage.get(d.id)
            if usage is not None and (d.rpm is not None or d.tpm is not None):
                minute = int(now // 60)
                usage.this_minute(minute)
                if (d.rpm is not None and usage.requests >= d.rpm) or (
                    d.tpm is not None and usage.tokens >= d.tpm
                ):
                    left = max(left, (minute + 1) * 60 - now)
            waits.append(left)
        return min(waits, default=0.0)

    def cooldowns(self) -> list[dict[str, Any]]:
        """Every active cooldown, soonest end first: deployment, model, upstream, key tag."""
        now = self.clock()
        self._expire(now)
        active = sorted(self._cooldowns.values(), key=lambda c: c.until)
        return [
            {
                "deployment": c.deployment.id,
                "model": c.model,
                "upstream": c.deployment.upstream,
                "origin": c.deployment.origin or None,
                "key_hash": c.tag or None,
                "reason": c.reason,
                "until": iso(c.until),
                "seconds_left": round(c.until - now, 3),
            }
            for c in active
        ]


def with_cooldowns(
    sessions: list[dict[str, Any]], cooldowns: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Session entries with each origin's active cooldowns (and one entry per origin that
    has cooldowns but no session yet)."""
    by_origin: dict[str, list[dict[str, Any]]] = {}
    for c in cooldowns:
        by_origin.setdefault(c["origin"] or c["upstream"], []).append(c)
    out = []
    for entry in sessions:
        mine = by_origin.pop(entry["origin"], [])
        out.append(_merged(entry, mine))
    for origin, mine in sorted(by_origin.items()):
        out.append(_merged(_empty_session(origin), mine))
    return out


def _merged(entry: Mapping[str, Any], cooldowns: list[dict[str, Any]]) -> dict[str, Any]:
    latest = max((c["until"] for c in cooldowns), default=None)
    return {**entry, "backed_off_until": latest, "cooldowns": cooldowns}


def _empty_session(origin: str) -> dict[str, Any]:
    return {
        "origin": origin,
        "cookies": [],
        "requests": 0,
        "last_status": None,
        "last_verdict": None,
        "last_seen": None,
        "backed_off_until": None,
        "cooldowns": [],
    }
