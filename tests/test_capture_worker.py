"""Turn capture on its own thread: the request path hands over, the thread follows the loop."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.tally import Tally
from memproxy_cli.config import parse_config
from memproxy_cli.memory.capture import leg_of
from memproxy_cli.memory.capture_worker import CaptureWorker, Ending, Outcome, Skipped, Stored
from memproxy_cli.memory.service import MemoryService
from memproxy_cli.paths import Paths


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def body(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": copy.deepcopy(list(messages))}


def answer(text: str, tool: bool = False) -> Tally:
    tally = Tally(ended_with_tool_call=tool)
    tally.add_text(text)
    return tally


def ending(human: str, reply: Any) -> Ending:
    leg = leg_of(ANTHROPIC_MESSAGES.conversation(body(user(human))), {}, "p")
    assert leg is not None
    return Ending(leg, "p", "ok", reply, False, "m", None, "test")


class HeldAnswer:
    """An answer the capture thread waits on when it reads its text."""

    ended_with_tool_call = False

    def __init__(self) -> None:
        self.reading = threading.Event()
        self.release = threading.Event()

    @property
    def text(self) -> str:
        self.reading.set()
        self.release.wait(30)
        return "the held answer"


class BrokenAnswer:
    ended_with_tool_call = False

    @property
    def text(self) -> str:
        raise ValueError("unreadable")


def stored_humans(outcomes: list[Outcome]) -> list[str]:
    return [o.turn.user for o in outcomes if isinstance(o, Stored)]


async def test_a_full_queue_drops_the_leg_and_says_so() -> None:
    delivered: list[Outcome] = []
    worker = CaptureWorker(delivered.extend, max_queued=1)
    held = HeldAnswer()
    try:
        assert worker.submit(ending("the first question", held))
        assert await asyncio.to_thread(held.reading.wait, 30)  # the thread took it off the queue
        assert worker.submit(ending("the second question", answer("two")))
        assert not worker.submit(ending("the third question", answer("three")))
        held.release.set()
        await worker.flush(30)
    finally:
        held.release.set()
        await worker.close()
    assert stored_humans(delivered) == ["the first question", "the second question"]


async def test_a_leg_the_thread_cannot_read_is_logged_and_the_next_one_is_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivered: list[Outcome] = []
    worker = CaptureWorker(delivered.extend)
    try:
        with caplog.at_level(logging.WARNING, logger="memproxy.memory"):
            assert worker.submit(ending("a question with a broken answer", BrokenAnswer()))
            assert worker.submit(ending("a question answered well", answer("fine")))
            await worker.flush(30)
    finally:
        await worker.close()
    assert stored_humans(delivered) == ["a question answered well"]
    assert "memory capture skipped a request: ValueError" in caplog.text
    assert not worker.submit(ending("after close", answer("x")))


def test_a_leg_is_read_as_sent_after_memories_were_injected() -> None:
    sent = body(user("Our queue is RabbitMQ; fix the consumer"))
    leg = leg_of(ANTHROPIC_MESSAGES.conversation(sent), {}, "p")
    assert leg is not None and leg.human_shaped
    ANTHROPIC_MESSAGES.inject(sent, "<memproxy-memories>\n- a note\n</memproxy-memories>", None)
    assert len(sent["messages"][-1]["content"]) == 2  # the body now carries the block
    assert leg.messages()[-1]["content"] == [
        {"type": "text", "text": "Our queue is RabbitMQ; fix the consumer"}
    ]


CONFIG = parse_config(yaml.safe_dump({"memory": {"backend": "local"}}), "t.yaml")


def _service(home: Path) -> MemoryService:
    return MemoryService(CONFIG, Paths(home / "c", home / "d", home / "s", home / "l"))


async def _loop(service: MemoryService, human: str, last_status: str) -> None:
    """A three-leg tool loop through the service as the gateway calls it."""
    first = user(human)
    use = {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pytest -q"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "SECRET OUTPUT"}
    legs = [
        (body(first), answer("Let me run the tests.", tool=True), "ok"),
        (
            body(
                first,
                {"role": "assistant", "content": [use]},
                {"role": "user", "content": [result]},
            ),
            answer("All 3 tests pass.", tool=False),
            last_status,
        ),
    ]
    headers = {"x-claude-code-session-id": "s-" + last_status}
    for sent, reply, status in legs:
        recall = await service.recall(ANTHROPIC_MESSAGES, sent, "p", "p", headers, "claude-cli")
        service.finish(recall, "p", "p", status, reply, False, "m", None)


@pytest.mark.parametrize("status", ["error", "client_disconnect"])
async def test_a_loop_that_ends_badly_stores_nothing_and_is_counted(
    tmp_path: Path, status: str
) -> None:
    service = _service(tmp_path)
    try:
        await _loop(service, "Run the tests and tell me whether they pass", status)
        await service.drain(30)
        backend = service.backend_for(CONFIG.memory)
        assert backend is not None
        assert await backend.list("p") == []
        assert service.stats.take() == {"p": {status: 1}}
        await _loop(service, "Run the tests again and tell me whether they pass", "ok")
        await service.drain(30)
        [memory] = await backend.list("p")
    finally:
        await service.close()
    assert memory.text == (
        "User: Run the tests again and tell me whether they pass\n"
        "Assistant: All 3 tests pass.\nActions: ran pytest"
    )
    assert memory.metadata["client"] == "claude-cli"


async def test_evicted_loops_are_counted_on_the_event_loop() -> None:
    delivered: list[Outcome] = []
    worker = CaptureWorker(delivered.extend, max_loops=1)
    try:
        for n in range(3):
            worker.submit(ending(f"open question number {n}", answer("", tool=True)))
        await worker.flush(30)
    finally:
        await worker.close()
    assert delivered == [Skipped("p", "abandoned"), Skipped("p", "abandoned")]
