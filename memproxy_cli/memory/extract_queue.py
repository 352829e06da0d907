"""Extraction in the background: bounded, a few calls at a time, and a fallback for failures.

A finished turn waits here for its facts (extract.py) off the request path. At most
`max_pending` turns wait at once (past that a turn is stored as it is, counted in `skipped`),
and at most `concurrency` calls are in flight, so a burst of turns is not a burst of calls to
the user's model. A failed or useless extraction (an upstream error, a reply that is not the
JSON asked for, no fact in it) stores the turn as it is, so the turn stays searchable.
"""

from __future__ import annotations

import asyncio
import logging
import re

from memproxy_cli.memory.backend import MemoryBackend, Turn
from memproxy_cli.memory.extract import (
    FACTS,
    Extractor,
    build_request,
    fact_turns,
    parse_facts,
)
from memproxy_cli.memory.redact import redact_prefix

log = logging.getLogger("memproxy.memory")

MAX_PENDING_EXTRACTIONS = 32
CONCURRENT_EXTRACTIONS = 2
EXTRACT_TIMEOUT_S = 120.0
_UNSAFE = re.compile(r"[^\x20-\x7e]+")


def _reason(exc: BaseException) -> str:
    """A one-line reason without secrets."""
    detail = _UNSAFE.sub(" ", redact_prefix(str(exc), 160))[:160].strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class Extraction:
    """The gateway's extractor with its bounds and counters (one per memory service)."""

    def __init__(
        self,
        extractor: Extractor,
        max_pending: int = MAX_PENDING_EXTRACTIONS,
        concurrency: int = CONCURRENT_EXTRACTIONS,
        timeout_s: float = EXTRACT_TIMEOUT_S,
    ) -> None:
        self._extractor = extractor
        self._max_pending = max_pending
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout_s = timeout_s
        self.waiting = 0
        self.extracted = 0  # turns stored as facts
        self.facts = 0  # facts stored
        self.failed = 0  # calls that failed or replies that were refused
        self.empty = 0  # replies with no fact: the turn is stored as it is
        self.skipped = 0  # turns stored as they are because too many were waiting

    def reserve(self) -> bool:
        """A place for one more turn, taken now (from the event loop, as the turn is queued);
        False when every place is taken. The caller releases it once the turn is stored."""
        if self.waiting < self._max_pending:
            self.waiting += 1
            return True
        self.skipped += 1
        log.warning(
            "memory extraction queue full (%d); storing a turn without extraction",
            self._max_pending,
        )
        return False

    def release(self) -> None:
        self.waiting -= 1

    async def facts_for(
        self, model: str, turn: Turn, scope: str, project: str | None, user_id: str | None
    ) -> list[str]:
        """The facts of `turn` (redacted already); [] when extraction failed or found none."""
        try:
            async with self._slots:
                request = build_request(model, turn, scope, project, user_id)
                reply = await asyncio.wait_for(self._extractor(request), self._timeout_s)
                facts = await asyncio.to_thread(parse_facts, reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed += 1
            log.warning(
                "memory extraction with %r failed for scope %r (turn stored as it is): %s",
                model,
                scope,
                _reason(exc),
            )
            return []
        if not facts:
            self.empty += 1
        return facts

    async def store(
        self, backend: MemoryBackend, scope: str, turn: Turn, facts: list[str], model: str
    ) -> None:
        """The turn, marked as distilled, then its facts linked to it (one write batch)."""
        turn.metadata[FACTS] = len(facts)
        turn.metadata["extract_model"] = model
        source_id = await backend.add(scope, turn)
        if source_id is None:
            return
        stored = await asyncio.gather(
            *(backend.add(scope, fact) for fact in fact_turns(facts, turn, source_id, model))
        )
        self.extracted += 1
        self.facts += len(stored)

    def counts(self) -> dict[str, int]:
        return {
            "waiting": self.waiting,
            "extracted": self.extracted,
            "facts": self.facts,
            "failed": self.failed,
            "empty": self.empty,
            "skipped": self.skipped,
        }
