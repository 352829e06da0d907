"""Per-step timings of the daemon's recalls, across threads (benchmarks/recall_wall.py).

Put this directory first on PYTHONPATH with MEMPROXY_RECALL_TRACE=FILE in the environment of
`memproxy up`: in the forked daemon it wraps the recall's steps (the loop's `recall`, the hop
to the reader thread, the question's vector, the full text, the vector candidates, the rows,
the ranking) and the other threads' work (the writer's batches, the embedder's), recording
`time.perf_counter_ns` and `time.thread_time_ns` at each step, and the thread's time spent
waiting for a core (`/proc/thread-self/schedstat`). SIGUSR1 writes what was recorded so far,
and every thread's CPU and run-queue time, to FILE as JSON (then FILE.done).
MEMPROXY_SWITCH_INTERVAL=S sets `sys.setswitchinterval(S)` in the daemon.
Nothing here is imported by the package; without the variable this file does nothing.
"""

from __future__ import annotations

import os

_OUT = os.environ.get("MEMPROXY_RECALL_TRACE")


def _sched() -> tuple[int, int]:
    """This thread's (ns on a core, ns waiting for one) from the scheduler."""
    with open("/proc/thread-self/schedstat", "rb") as f:
        on_cpu, waiting, _ = f.read().split()
    return int(on_cpu), int(waiting)


def _install() -> None:
    import asyncio
    import contextvars
    import json
    import signal
    import sys
    import threading
    import time
    from typing import Any

    if getattr(_install, "done", False):
        return
    _install.done = True  # type: ignore[attr-defined]
    interval = os.environ.get("MEMPROXY_SWITCH_INTERVAL")
    if interval:
        sys.setswitchinterval(float(interval))

    from memproxy_cli.gateway import proxy
    from memproxy_cli.memory import local, local_search, scope_vectors, service

    pc, tt = time.perf_counter_ns, time.thread_time_ns
    recalls: list[dict[str, Any]] = []
    others: list[tuple[str, int, int, int]] = []  # (what, start, end, cpu)
    here = threading.local()
    current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("recall")

    def mark(name: str) -> None:
        rec = getattr(here, "rec", None)
        if rec is not None:
            rec[name] = (pc(), tt())

    requests: list[tuple[int, int, int, int]] = []  # the loop's (start, end, CPU) of each
    handle = proxy.handle

    async def traced_handle(*args: Any, **kwargs: Any) -> Any:
        t0, c0 = pc(), tt()
        try:
            return await handle(*args, **kwargs)
        finally:
            requests.append((t0, pc(), tt() - c0, 0))

    proxy.handle = traced_handle  # type: ignore[assignment]
    recall = service.MemoryService.recall

    async def traced_recall(self: Any, *args: Any, **kwargs: Any) -> Any:
        rec: dict[str, Any] = {"recall0": pc(), "recall_cpu0": tt()}
        current.set(rec)
        try:
            return await recall(self, *args, **kwargs)
        finally:
            rec["recall1"], rec["recall_cpu1"] = pc(), tt()
            recalls.append(rec)

    service.MemoryService.recall = traced_recall  # type: ignore[method-assign]

    backend = local.LocalMemoryBackend

    async def traced_search(self: Any, scope: str, query: str, k: int) -> Any:
        rec = current.get(None)
        if rec is None:
            rec = {}
        rec["search0"] = pc()
        if k <= 0 or not local.query_terms(query):
            return []
        used: list[Any] = []

        def call() -> Any:
            rec["call0"] = (pc(), tt(), *_sched())
            here.rec = rec
            try:
                used.append(self._connection(reader=True))
                return self.search_sync(scope, query, k)
            finally:
                here.rec = None
                rec["call1"] = (pc(), tt(), *_sched())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, call)
        except asyncio.CancelledError:
            if used:
                used[0].interrupt()
            raise
        finally:
            rec["search1"] = pc()

    backend.search = traced_search  # type: ignore[method-assign]

    def step(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            mark(name + "0")
            try:
                return original(*args, **kwargs)
            finally:
                mark(name + "1")

        setattr(owner, name, wrapped)

    step(backend, "_query_vector")
    step(local_search.LocalSearch, "_lexical")
    step(scope_vectors.ScopeVectors, "top")
    top = scope_vectors.ScopeVectors.top

    def traced_top(*args: Any, **kwargs: Any) -> Any:
        found = top(*args, **kwargs)
        rec = getattr(here, "rec", None)
        if rec is not None and found is None:
            rec["top_none"] = 1  # the scope's vectors were not loaded yet
        return found

    scope_vectors.ScopeVectors.top = traced_top  # type: ignore[method-assign]
    step(local_search, "exact_cosines")
    step(local_search, "rank")

    def other(owner: Any, name: str, what: str) -> None:
        original = getattr(owner, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = pc(), tt()
            try:
                return original(*args, **kwargs)
            finally:
                others.append((what, t0, pc(), tt() - c0))

        setattr(owner, name, wrapped)

    other(backend, "_add_batch", "writer")
    other(backend, "_embed_pending", "embedder")
    other(scope_vectors.ScopeVectors, "_fill", "loader")

    def threads() -> list[dict[str, Any]]:
        out = []
        main = threading.main_thread()
        for thread in threading.enumerate():
            tid = os.getpid() if thread is main else thread.native_id  # stale after the fork
            try:
                with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                    on_cpu, waiting, slices = f.read().split()
            except OSError:
                continue
            out.append(
                {
                    "name": thread.name,
                    "cpu_ns": int(on_cpu),
                    "wait_ns": int(waiting),
                    "slices": int(slices),
                }
            )
        return out

    def dump(_signum: int, _frame: Any) -> None:
        assert _OUT is not None
        data = {
            "recalls": list(recalls),
            "others": list(others),
            "threads": threads(),
            "requests": list(requests),
            "switch_interval": sys.getswitchinterval(),
            "now": pc(),
        }
        with open(_OUT + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(_OUT + ".tmp", _OUT)
        with open(_OUT + ".done", "a") as f:
            f.write("1\n")

    signal.signal(signal.SIGUSR1, dump)


if _OUT:
    os.register_at_fork(after_in_child=_install)
