"""When each step of one request ran: what spans are built from, after the request ended."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Timeline:
    """Offsets in seconds from the request's start; None where a step did not run."""

    recall_start: float | None = None
    recall_end: float | None = None
    recall: str = "off"  # off | skipped | hit | miss | timeout | error
    upstream_start: float | None = None
    upstream_answer: float | None = None  # the transport returned (a whole body, or headers)
    record_start: float | None = None
    record_end: float | None = None
    upstream_model: str | None = None  # the model the call was routed to
    method: str = "POST"
    incoming_traceparent: str | None = None  # the client's, as sent
    upstream_traceparent: str = ""  # the one sent upstream (its span id is the upstream span's)


def recall_outcome(attempted: bool, error: str | None, injected: int) -> str:
    """How one recall ended, as the metrics and spans name it."""
    if not attempted:
        return "skipped"
    if error:
        return "timeout" if error.startswith("timeout") else "error"
    return "hit" if injected else "miss"
