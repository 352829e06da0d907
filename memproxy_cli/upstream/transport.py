"""The cut between the request path and the transports (passthrough, LiteLLM, echo, edge).

A transport takes an `UpstreamCall` and returns an `UpstreamResponse`; it never writes to the
client. One relay in the gateway writes every response (time to first byte, usage, the
terminal event, SSE errors, client hang-ups), whichever transport produced it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDictProxy

from memproxy_cli.api.family import ApiFamily
from memproxy_cli.config import Config
from memproxy_cli.upstream.limits import OriginLimiter, RetryBudget
from memproxy_cli.upstream.routing import Route

if TYPE_CHECKING:
    from memproxy_cli.upstream.sessions import SessionManager


@dataclass(slots=True)
class Timing:
    """Time spent waiting on the upstream (so the gateway's own overhead can be told apart)."""

    upstream_s: float = 0.0
    attempts: int = 0  # upstream calls made for the request, retries and fallbacks included


@dataclass(slots=True)
class UpstreamCall:
    """One call to make: the client's request, prepared, and where it goes."""

    family: ApiFamily
    route: Route
    body: dict[str, Any]
    payload: bytes  # the body as it goes upstream
    stream: bool
    incoming: CIMultiDictProxy[str]  # the client's request headers
    path_qs: str  # the client's path and query string
    query: str
    traceparent: str
    model: str  # the name the client asked for
    timing: Timing = field(default_factory=Timing)
    method: str = "POST"
    upstream_path: str = ""  # the path on the upstream's base; default: the family's


@dataclass(slots=True)
class UpstreamResponse:
    """What came back: a whole body (bytes or a JSON document) or an iterator of SSE bytes.

    An `events` iterator raises only GatewayError (after the first byte: an SSE error event).
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    document: Any = None
    events: AsyncIterator[bytes] | None = None
    error: str | None = None  # why a non-2xx answer failed, for the row
    close: Callable[[], None] | None = None  # release the upstream connection
    retry_after_s: float | None = None  # a failed answer's Retry-After
    via_cloudflare: bool = False  # a failed answer came from Cloudflare (never retried there)


@dataclass(frozen=True, slots=True)
class UpstreamDeps:
    """The shared resources a transport uses, as they are when the call starts."""

    config: Config
    sessions: SessionManager
    limiter: OriginLimiter
    retry_budget: RetryBudget
