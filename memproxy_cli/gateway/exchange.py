"""One request's journey through the gateway: its parsed body, identity, timings and row."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from memproxy_cli.api.family import ApiFamily
from memproxy_cli.api.tally import Tally
from memproxy_cli.gateway.identity import Identity
from memproxy_cli.memory.service import Recall
from memproxy_cli.observability.timeline import Timeline
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.upstream.routing import Route
from memproxy_cli.upstream.transport import Timing

if TYPE_CHECKING:
    from memproxy_cli.gateway.resources import Resources

# Ids only need to be unique, not secret: the PRNG costs no system call (os.urandom did, three
# times a request), and the random module reseeds itself in a forked child.
_bits = random.getrandbits


def new_request_id() -> str:
    """`req_` + 48 bits of milliseconds + 48 random bits: unique, and in time order, so each new
    row lands at the end of the store's request-id index instead of on a random page of it."""
    return f"req_{time.time_ns() // 1_000_000:012x}{_bits(48):012x}"


def traceparent_for(incoming: str | None) -> tuple[str, str]:
    """(traceparent to send upstream, trace id): continue the caller's trace or start one."""
    if incoming:
        parts = incoming.strip().split("-")
        if (
            len(parts) == 4
            and len(parts[0]) == 2
            and len(parts[1]) == 32
            and len(parts[2]) == 16
            and _is_hex(parts[1])
            and parts[1] != "0" * 32
        ):
            child = f"{parts[0]}-{parts[1]}-{_span_id()}-{parts[3][:2]}"
            return child, parts[1]
    trace_id = f"{_bits(128) or 1:032x}"  # all-zero ids are invalid (W3C trace context)
    return f"00-{trace_id}-{_span_id()}-01", trace_id


def _span_id() -> str:
    return f"{_bits(64) or 1:016x}"


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


@dataclass
class Exchange:
    request: web.Request
    family: ApiFamily
    endpoint: str
    row: RequestRow
    resources: Resources  # the app's, for this request (gateway/resources.py)
    t0: float = field(default_factory=time.perf_counter)
    identity: Identity | None = None
    body: dict[str, Any] = field(default_factory=dict)
    raw: bytes = b""
    modified: bool = False
    route: Route | None = None
    stream: bool = False
    client_wants_usage: bool = True
    traceparent: str = ""
    timing: Timing = field(default_factory=Timing)  # time spent waiting on the upstream
    ttft_s: float | None = None
    stream_complete: bool = False  # the terminal SSE event reached the client
    tally: Tally = field(default_factory=Tally)
    recall_user_text: str | None = None
    recall: Recall | None = None  # what memory made of the request, for storing its turn
    memory_error: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)  # when each step ran (spans)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    def overhead_ms(self) -> float:
        return max(0.0, (self.elapsed_s() - self.timing.upstream_s) * 1000.0)

    def body_bytes(self) -> bytes:
        if self.modified:
            import orjson

            return orjson.dumps(self.body)
        return self.raw
