"""Turns queued while the writer is busy share one write; every caller gets its own outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.memory.turn_batcher import TurnBatcher


class Writer:
    """Records each batch; the first write waits until released."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, turns: Sequence[tuple[str, Turn]]) -> list[str]:
        self.started.set()
        self.release.wait(10)
        self.batches.append([turn.user for _, turn in turns])
        if self.fail:
            raise OSError("disk full")
        return [f"id-{turn.user}" for _, turn in turns]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


def turn(text: str) -> Turn:
    return Turn(user=text, assistant="ok")


async def test_turns_queued_during_a_write_share_the_next(executor: ThreadPoolExecutor) -> None:
    writer = Writer()
    batcher = TurnBatcher(executor, writer)
    first = asyncio.ensure_future(batcher.add("p", turn("a")))
    await asyncio.to_thread(writer.started.wait, 10)
    rest = [asyncio.ensure_future(batcher.add("p", turn(t))) for t in "bcd"]
    await asyncio.sleep(0)  # let them queue
    writer.release.set()
    assert await first == "id-a"
    assert await asyncio.gather(*rest) == ["id-b", "id-c", "id-d"]
    assert writer.batches == [["a"], ["b", "c", "d"]]


async def test_a_failed_write_fails_every_turn_in_it(executor: ThreadPoolExecutor) -> None:
    writer = Writer(fail=True)
    writer.release.set()
    batcher = TurnBatcher(executor, writer)
    results = await asyncio.gather(
        *(batcher.add("p", turn(t)) for t in "ab"), return_exceptions=True
    )
    assert all(isinstance(r, OSError) for r in results)


async def test_a_caller_that_gave_up_does_not_stop_the_others(
    executor: ThreadPoolExecutor,
) -> None:
    writer = Writer()
    batcher = TurnBatcher(executor, writer)
    gone = asyncio.ensure_future(batcher.add("p", turn("a")))
    kept = asyncio.ensure_future(batcher.add("p", turn("b")))
    await asyncio.to_thread(writer.started.wait, 10)
    gone.cancel()
    writer.release.set()
    assert await kept == "id-b"
    assert [t for batch in writer.batches for t in batch] == ["a", "b"]  # written all the same


async def test_lingering_store_writes_every_turn(tmp_path: Path) -> None:
    store = LocalMemoryBackend(tmp_path / "memory.sqlite3", store_linger_s=0.01)
    try:
        ids = await asyncio.gather(*(store.add("p", turn(f"fact {i}")) for i in range(30)))
        ids.append(await store.add("q", turn("another project")))
        assert len(set(ids)) == 31
        assert len(await store.export("p")) == 30
        assert [m.id for m in await store.export("q")] == [ids[-1]]
    finally:
        await store.close()
