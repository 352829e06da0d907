"""Turn capture after the answer, on a thread of its own, so the request path only hands over.

After the answer the request path puts its leg (capture.leg_of) and the response's tally on a
bounded queue and returns. One thread takes them in order: it follows the loop
(`LoopTracker.observe_leg`, `finish`), removes chrome, redacts a finished turn, and gives the
event loop, in one call per batch, what to do: store these turns, count these skips. A single
thread keeps the legs of a loop in the order they were answered (a client sends the next leg
only once it has the answer to the last) and is the only one that changes the tracker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.capture import MAX_LOOPS, Leg, LoopTracker, OpenLoop
from memproxy_cli.memory.redact import redact_prefix
from memproxy_cli.memory.turn_text import MAX_PART_CHARS, dedup_key

log = logging.getLogger("memproxy.memory")

# Legs waiting for the thread; each holds its request's parsed body until it is read, so the
# bound is also one on memory. A full queue drops the leg (counted as a dropped store).
MAX_QUEUED = 256
POLL_S = 0.05  # how soon a busy capture thread looks at the queue again


class Answer(Protocol):
    """What memory reads of a response (the API family's Tally)."""

    @property
    def text(self) -> str: ...

    ended_with_tool_call: bool


@dataclass(slots=True)  # not frozen: a frozen dataclass costs the request path 2 us to build
class Ending:
    """One answered request, as the request path hands it over."""

    leg: Leg
    project: str | None
    status: str
    answer: Answer
    echo: bool
    model: str | None
    request_id: str | None
    client: str | None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    scope: str
    project: str | None
    turn: Turn  # redacted and keyed for duplicates
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    scope: str
    reason: str


Outcome = Stored | Skipped
Deliver = Callable[[list[Outcome]], None]


@dataclass(frozen=True, slots=True)
class _Flush:
    done: asyncio.Future[None]


_Item = tuple[asyncio.AbstractEventLoop, Ending | _Flush]


def prepare_turn(turn: Turn) -> None:
    """Redact the parts of a turn, as much of each as a stored turn keeps (turn_text.py), and
    key it for duplicates."""
    turn.user = redact_prefix(turn.user, MAX_PART_CHARS)
    turn.assistant = redact_prefix(turn.assistant, MAX_PART_CHARS)
    turn.note = redact_prefix(turn.note, MAX_PART_CHARS)
    turn.dedup_key = dedup_key(turn.user, turn.assistant)


class CaptureWorker:
    """The capture thread; `deliver` runs on the event loop that submitted the legs."""

    def __init__(
        self, deliver: Deliver, max_queued: int = MAX_QUEUED, max_loops: int = MAX_LOOPS
    ) -> None:
        self.tracker = LoopTracker(max_loops=max_loops, on_evict=self._evicted)
        self._deliver = deliver
        self._max_queued = max_queued
        self._queue: deque[_Item] = deque()
        # Released to wake the thread (a bare lock: an Event costs more). Waking a thread is a
        # system call, so a submit wakes it only when it is idle; while legs keep coming it
        # looks at the queue every POLL_S on its own.
        self._wake = threading.Lock()
        self._wake.acquire()
        self._idle = True
        self._closed = False
        self._thread: threading.Thread | None = None
        self._batch: list[Outcome] = []  # the thread's, while it processes one leg

    # -- the event loop's side ------------------------------------------------------------------

    def submit(self, ending: Ending) -> bool:
        """Queue an answered leg; False (nothing queued) when the queue is full or closed."""
        if len(self._queue) >= self._max_queued or self._closed:
            return False
        self._put((asyncio.get_running_loop(), ending))
        return True

    async def flush(self, timeout: float) -> None:  # noqa: ASYNC109 (drain's contract)
        """Wait until every leg queued before this call has been delivered."""
        if self._thread is None or self._closed:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._put((loop, _Flush(done)))
        self._signal()  # now, not at the next look
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(done), timeout)

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Deliver what is queued, then end the thread."""
        await self.flush(timeout)
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._signal()
            await asyncio.to_thread(thread.join, timeout)

    def _put(self, item: _Item) -> None:
        self._queue.append(item)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="memproxy-capture", daemon=True)
            self._thread.start()
        if self._idle:
            self._signal()

    def _signal(self) -> None:
        self._idle = False
        with contextlib.suppress(RuntimeError):  # already released, not yet taken
            self._wake.release()

    # -- the thread's side --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            if self._idle:
                self._wake.acquire()  # until a submit wakes it
            else:
                self._wake.acquire(timeout=POLL_S)  # busy: look again soon, unasked
            if self._drain():
                continue
            self._idle = True  # a leg queued from now on wakes the thread
            if self._queue:  # queued before that, without waking it
                self._idle = False

    def _drain(self) -> bool:
        """Follow every queued leg and hand the outcomes over; False when there was none."""
        if not self._queue:
            return False
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome | _Flush]] = {}
        while self._queue:
            loop, item = self._queue.popleft()
            settled = by_loop.setdefault(loop, [])
            if isinstance(item, _Flush):
                settled.append(item)
                continue
            self._process(item)
            settled.extend(self._batch)
            self._batch.clear()
        for loop, settled in by_loop.items():
            if settled:
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                    loop.call_soon_threadsafe(self._settle, settled)
        return True

    def _settle(self, settled: list[Outcome | _Flush]) -> None:
        """On the event loop: hand over the outcomes, then release the flushes among them."""
        outcomes = [o for o in settled if not isinstance(o, _Flush)]
        if outcomes:
            self._deliver(outcomes)
        for item in settled:
            if isinstance(item, _Flush) and not item.done.done():
                item.done.set_result(None)

    def _process(self, ending: Ending) -> None:
        try:
            self._follow(ending)
        except Exception as exc:  # a leg the tracker cannot read must not end the thread
            log.warning("memory capture skipped a request: %s", type(exc).__name__)

    def _follow(self, e: Ending) -> None:
        leg, scope = e.leg, e.leg.scope
        if leg.subagent:
            # Never stored, so not followed: counted once, on the prompt that starts it.
            if leg.human_shaped and self.tracker.human_words(leg) is not None:
                self._batch.append(Skipped(scope, "subagent"))
            return
        capture = self.tracker.observe_leg(leg)
        if capture is None or capture.loop is None:
            return
        ok, tool = e.status == "ok", e.answer.ended_with_tool_call
        draft = self.tracker.finish(capture, ok, tool, "" if tool else e.answer.text)
        if draft is None:
            if not ok:
                reason = "client_disconnect" if e.status == "client_disconnect" else "error"
                self._batch.append(Skipped(scope, reason))
            elif not tool:
                self._batch.append(Skipped(scope, "no_answer"))
            return
        if e.echo:
            self._batch.append(Skipped(scope, "echo"))
            return
        turn = Turn(
            user=draft.human,
            assistant=draft.answer,
            model=e.model,
            request_id=e.request_id,
            client=e.client,
            note=draft.note,
            chrome_chars=draft.chrome_chars,
        )
        prepare_turn(turn)
        self._batch.append(Stored(scope, e.project, turn, e.user_id))

    def _evicted(self, scope: str, loop: OpenLoop) -> None:
        self._batch.append(Skipped(scope, "abandoned"))
