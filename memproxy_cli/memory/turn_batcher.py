"""Turns waiting to be stored, written together: one transaction for all turns queued meanwhile.

Each stored turn used to be its own transaction (a text-index segment, a commit) and its own
trip to the writer thread and back. The writer now takes every turn queued since it last
wrote. With `linger_s`, it also waits until that long has passed since its last write, so that
under steady load (a turn per call) several turns share a transaction; a turn that arrives
after the writer has been idle that long is written at once. Callers get their memory id when
the transaction that holds their turn has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from memproxy_cli.memory.backend import Turn

WriteBatch = Callable[[Sequence[tuple[str, Turn]]], list[str]]


@dataclass(slots=True)
class _Waiting:
    scope: str
    turn: Turn
    done: asyncio.Future[str]
    loop: asyncio.AbstractEventLoop


class TurnBatcher:
    def __init__(self, executor: Executor, write: WriteBatch, linger_s: float = 0.0) -> None:
        self._executor = executor
        self._write = write
        self._linger_s = linger_s
        self._queue: list[_Waiting] = []
        self._lock = threading.Lock()
        self._scheduled = False
        self._last_write = 0.0  # time.monotonic() of the last write (writer thread only)

    async def add(self, scope: str, turn: Turn) -> str:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        with self._lock:
            self._queue.append(_Waiting(scope, turn, done, loop))
            start, self._scheduled = not self._scheduled, True
        if start:
            self._executor.submit(self._write_queued)
        return await done

    def _write_queued(self) -> None:
        """In the writer thread: write everything queued (after the linger), settle callers."""
        wait = self._last_write + self._linger_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with self._lock:
            batch, self._queue = self._queue, []
            self._scheduled = False
        outcome: list[str] | BaseException
        try:
            outcome = self._write([(w.scope, w.turn) for w in batch])
        except Exception as exc:
            outcome = exc
        self._last_write = time.monotonic()
        loops: dict[asyncio.AbstractEventLoop, list[tuple[_Waiting, str | None]]] = {}
        for i, waiting in enumerate(batch):
            memory_id = outcome[i] if isinstance(outcome, list) else None
            loops.setdefault(waiting.loop, []).append((waiting, memory_id))
        failure = outcome if isinstance(outcome, BaseException) else None
        for loop, settled in loops.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, settled, failure)


def _settle(settled: list[tuple[_Waiting, str | None]], failure: BaseException | None) -> None:
    for waiting, memory_id in settled:
        if waiting.done.done():  # the caller gave up (cancelled)
            continue
        if failure is not None:
            waiting.done.set_exception(failure)
        elif memory_id is not None:
            waiting.done.set_result(memory_id)
