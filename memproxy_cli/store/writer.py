"""The single spend writer: a thread with its own engine takes rows from a bounded queue and
commits them in batches; when the store fails, rows go to the spill file and come back later.

The queue is a deque (append and popleft are atomic and cost no lock): `submit` runs on the
event loop, and the writer thread should spend as little of the GIL as it can.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from memproxy_cli.paths import Paths
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.store.spill import SpillFile, read_chunks

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

CommitHook = Callable[[list[RequestRow]], None]
_MAX_BACKOFF_S = 5.0


class SpendWriter:
    """submit() from anywhere (never blocks, never raises); the thread does all DB work."""

    def __init__(
        self,
        database_url: str | None,
        paths: Paths,
        *,
        batch_rows: int = 500,
        flush_interval_s: float = 0.25,
        queue_max: int = 100_000,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self._database_url = database_url
        self._paths = paths
        self._batch_rows = batch_rows
        self._flush_interval_s = flush_interval_s
        self._busy_timeout_ms = busy_timeout_ms
        self._queue_max = queue_max
        self._rows: deque[RequestRow] = deque()
        self._stopping = threading.Event()
        self._wake = threading.Event()  # set when a batch is full, or on close
        self._closed = False
        self._spill = SpillFile(paths.spill_file)
        self._hooks: list[CommitHook] = []
        self._counts = dict.fromkeys(("written", "spilled", "dropped", "replayed", "batches"), 0)
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._retry_at = 0.0
        self._backoff_s = flush_interval_s

    @property
    def stats(self) -> dict[str, int]:
        with self._count_lock:
            return {**self._counts, "queued": len(self._rows)}

    def on_commit(self, cb: CommitHook) -> None:
        """Call `cb(rows)` in the writer thread with the rows each commit stored first."""
        self._hooks.append(cb)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="memproxy-spend-writer", daemon=True)
        self._thread.start()

    def submit(self, row: RequestRow) -> None:
        try:
            if len(self._rows) < self._queue_max and not self._closed:
                self._rows.append(row)
                if len(self._rows) >= self._batch_rows and not self._wake.is_set():
                    self._wake.set()
            else:
                self._to_spill([row])
        except Exception:  # never let accounting break a request
            self._count("dropped", 1)

    def close(self, timeout: float = 10.0) -> None:
        """Drain the queue into the store (or the spill file) and stop the thread."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            self._thread = None
        self._closed = True  # from now on submit() spills; the next start replays
        self._spill_queued()  # rows the thread could not take in time, or never started

    def _spill_queued(self) -> None:
        rows = self._pop(len(self._rows))
        if rows:
            self._to_spill(rows)

    def _pop(self, n: int) -> list[RequestRow]:
        pop = self._rows.popleft
        rows: list[RequestRow] = []
        try:
            for _ in range(n):
                rows.append(pop())
        except IndexError:
            pass
        return rows

    # --- the thread ---

    def _run(self) -> None:
        self._engine = self._open()
        self._replay()
        while self._step():
            pass
        if self._engine is not None:
            self._engine.dispose()

    def _step(self) -> bool:
        """One turn of the thread; False once stopping and drained."""
        batch: list[RequestRow] = []
        try:
            batch = self._take_batch()
            if batch:
                self._flush(batch)
            elif self._stopping.is_set():
                return False
            elif self._spill.has_pending() and time.monotonic() >= self._retry_at:
                self._replay()
        except Exception:  # the thread must survive anything; rows in hand go to the spill
            log.exception("spend writer error")
            self._to_spill(batch)
            self._failed()
        return True

    def _open(self) -> Engine | None:
        from memproxy_cli.store.engine import open_engine
        from memproxy_cli.store.migrations import migrate

        try:
            engine = open_engine(
                self._database_url, self._paths, busy_timeout_ms=self._busy_timeout_ms
            )
            migrate(engine)
            return engine
        except Exception as exc:
            log.warning("spend store unavailable at start, spilling: %s", type(exc).__name__)
            self._failed()
            return None

    def _take_batch(self) -> list[RequestRow]:
        """Up to batch_rows rows, once there are that many or flush_interval_s has passed."""
        deadline = time.monotonic() + self._flush_interval_s
        while len(self._rows) < self._batch_rows and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.wait(remaining)  # no polling: submit() wakes the thread on a full batch
            self._wake.clear()
        return self._pop(self._batch_rows)

    def _flush(self, batch: list[RequestRow]) -> None:
        if time.monotonic() < self._retry_at or not self._store(batch, "written"):
            self._to_spill(batch)
            return
        if self._spill.has_pending():
            self._replay()

    def _store(self, rows: list[RequestRow], counter: str) -> bool:
        from memproxy_cli.store.insert import write_batch

        if self._engine is None:
            self._engine = self._open()
            if self._engine is None:
                return False
        try:
            inserted = write_batch(self._engine, rows)
        except Exception as exc:
            log.warning("spend batch of %d rows failed, spilling: %s", len(rows), exc.__class__)
            self._failed()
            return False
        self._backoff_s = self._flush_interval_s
        self._retry_at = 0.0
        self._count(counter, len(inserted))
        self._count("batches", 1)
        self._notify(inserted)
        return True

    def _replay(self) -> None:
        if time.monotonic() < self._retry_at:
            return
        claimed = self._spill.claim()
        if claimed is None:
            return
        for chunk in read_chunks(claimed, self._batch_rows):
            if not self._store(chunk, "replayed"):
                return  # keep the claimed file; the next replay starts it over (idempotent)
        self._spill.finish(claimed)

    def _failed(self) -> None:
        self._retry_at = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, _MAX_BACKOFF_S)

    def _to_spill(self, rows: list[RequestRow]) -> None:
        if not rows:
            return
        try:
            self._spill.append(rows)
            self._count("spilled", len(rows))
        except Exception as exc:
            log.error("spill file unwritable, %d rows dropped: %s", len(rows), exc.__class__)
            self._count("dropped", len(rows))

    def _notify(self, rows: list[RequestRow]) -> None:
        if not rows:
            return
        for cb in self._hooks:
            try:
                cb(rows)
            except Exception:
                log.exception("spend on_commit hook failed")

    def _count(self, name: str, n: int) -> None:
        with self._count_lock:
            self._counts[name] += n
