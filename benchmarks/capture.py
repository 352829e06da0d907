"""Turn capture over realistic agent sessions: what is stored, what should not be, what it costs.

For each client, one 50-turn session shaped like its recorded traffic (tests/fixtures/clients/):
Claude Code (Messages, reminders, slash commands, tool loops, Agent subagents), opencode (chat
with tools and a session header), aider (chat, edit-format rules appended to every message),
Codex (Responses, environment context, shell calls, spawned subagents and their notices) and
Gemini CLI (no session header, a router call before every turn, session context, subagents
that end in a `complete_task` call).
Each request goes through the memory service as the gateway calls it (recall, then finish with
the answer's tally) into a local store; the report gives the share of human turns stored with
their final answer (target >= 95%), the stored items that are chrome or subagent prompts
(target 0) and the CPU per request of the capture step: what the request path pays now (placing
the request, the human's words for the recall query on the human's leg, handing the answered
leg to the capture thread) beside what following the loop costs (placing a request in its loop
and closing it, which the request path ran itself before it moved to the capture thread),
measured between the service's other work (mean, p50) and back to back (warm).
Usage: python benchmarks/capture.py [--turns 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from capture_sessions import CHROME_MARKS, SESSIONS, SUBAGENT_MARK, Leg, Session

from memproxy_cli.api.tally import Tally
from memproxy_cli.config import parse_config
from memproxy_cli.memory.capture import LoopTracker, leg_of
from memproxy_cli.memory.capture_worker import CaptureWorker, Ending
from memproxy_cli.memory.service import MemoryService
from memproxy_cli.paths import Paths


async def measure(session: Session, home: Path) -> dict[str, Any]:
    paths = Paths(home / "c", home / "d", home / "s", home / "l")
    config = parse_config(yaml.safe_dump({"memory": {"backend": "local"}}), "bench.yaml")
    service = MemoryService(config, paths)
    inline = LoopTracker()  # the loop followed on the request path, as it was
    front = CaptureWorker(lambda _outcomes: None)  # what the request path does now
    before: list[float] = []
    now: list[float] = []  # the loop's other legs (tool results)
    now_human: list[float] = []  # the human's legs (the recall's search follows)
    try:
        for leg in session.legs:
            conversation = session.family.conversation(leg.body)
            tally = Tally(ended_with_tool_call=leg.tool)
            tally.add_text(leg.answer)
            started = time.thread_time()  # this thread only: the store writes in its own
            capture = inline.observe(conversation, leg.headers, "throwaway")
            if capture is not None:
                inline.finish(capture, True, leg.tool, leg.answer)
            before.append(time.thread_time() - started)
            started = time.thread_time()
            human = _hand_over(front, conversation, leg, tally)
            (now_human if human else now).append(time.thread_time() - started)
            recall = await service.recall(session.family, leg.body, "bench", "bench", leg.headers)
            service.finish(recall, "bench", "bench", "ok", tally, False, "m", None)
            await service.drain(10)
        backend = service.backend_for(config.memory)
        assert backend is not None
        stored = [m.text for m in await backend.export("bench")]
    finally:
        await front.close()
        await service.close()
    warm_before, warm_now = await _warm_cpu(session)
    found = sum(1 for h, a in session.turns if f"User: {h}\nAssistant: {a}" in "\n\n".join(stored))
    bad = [t for t in stored if SUBAGENT_MARK in t or any(mark in t for mark in CHROME_MARKS)]
    return {
        "client": session.client,
        "requests": len(session.legs),
        "human_turns": len(session.turns),
        "stored": len(stored),
        "stored_with_final_answer": found,
        "share": found / len(session.turns),
        "chrome_or_subagent_items": len(bad),
        "request_path_cpu_us_per_request": statistics.fmean(now + now_human) * 1e6,
        "request_path_cpu_us_p50": statistics.median(now + now_human) * 1e6,
        "request_path_cpu_us_warm": warm_now * 1e6,
        "request_path_cpu_us_p50_tool_legs": statistics.median(now or [0.0]) * 1e6,
        "request_path_cpu_us_p50_human_legs": statistics.median(now_human) * 1e6,
        "inline_capture_cpu_us_per_request": statistics.fmean(before) * 1e6,
        "inline_capture_cpu_us_p50": statistics.median(before) * 1e6,
        "inline_capture_cpu_us_warm": warm_before * 1e6,
    }


def _hand_over(front: CaptureWorker, conversation: Any, leg: Leg, tally: Tally) -> bool:
    """The request path's part, as MemoryService.recall and finish run it; True on a leg that
    carries the human's words (the recall query)."""
    placed = leg_of(conversation, leg.headers, "throwaway")
    if placed is None:
        return False
    human = None
    if placed.human_shaped and not placed.subagent:
        human = front.tracker.human_words(placed)
    front.submit(Ending(placed, "p", "ok", tally, False, "m", None, None))
    return human is not None


async def _warm_cpu(session: Session, rounds: int = 5) -> tuple[float, float]:
    """CPU per request back to back (caches warm): following the loop inline, and the request
    path's part now."""
    conversations = [session.family.conversation(leg.body) for leg in session.legs]
    started = time.thread_time()
    for _ in range(rounds):
        tracker = LoopTracker()
        for conversation, leg in zip(conversations, session.legs, strict=True):
            capture = tracker.observe(conversation, leg.headers, "p")
            if capture is not None:
                tracker.finish(capture, True, leg.tool, leg.answer)
    inline = (time.thread_time() - started) / (rounds * len(session.legs))
    return inline, await _warm_hand_over(session, conversations, rounds)


async def _warm_hand_over(session: Session, conversations: list[Any], rounds: int) -> float:
    front = CaptureWorker(lambda _outcomes: None, max_queued=1 << 20)
    tallies = [Tally(ended_with_tool_call=leg.tool) for leg in session.legs]
    try:
        started = time.thread_time()
        for _ in range(rounds):
            for conversation, leg, tally in zip(conversations, session.legs, tallies, strict=True):
                _hand_over(front, conversation, leg, tally)
        spent = time.thread_time() - started
    finally:
        await front.close()
    return spent / (rounds * len(session.legs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="memproxy-capture-") as tmp:
        for name, make in SESSIONS.items():
            session = make(args.turns, random.Random(16))
            results.append(asyncio.run(measure(session, Path(tmp) / name)))
    print("== Turn capture (target: >= 95% of human turns stored, 0 chrome or subagent items)")
    print(
        f"{'client':<12} {'requests':>8} {'stored':>7} {'share':>7} {'bad':>4}   CPU/request: "
        "request path now (mean p50 warm; p50 tool legs, human legs) | loop followed inline, "
        "before (mean p50 warm)"
    )
    for r in results:
        print(
            f"{r['client']:<12} {r['requests']:>8} {r['stored']:>7} {r['share']:>7.0%} "
            f"{r['chrome_or_subagent_items']:>4}   "
            f"{r['request_path_cpu_us_per_request']:>5.1f}us "
            f"{r['request_path_cpu_us_p50']:>5.1f}us "
            f"{r['request_path_cpu_us_warm']:>5.1f}us; "
            f"{r['request_path_cpu_us_p50_tool_legs']:>5.1f}us "
            f"{r['request_path_cpu_us_p50_human_legs']:>5.1f}us | "
            f"{r['inline_capture_cpu_us_per_request']:>5.1f}us "
            f"{r['inline_capture_cpu_us_p50']:>5.1f}us {r['inline_capture_cpu_us_warm']:>5.1f}us"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all(r["share"] >= 0.95 and r["chrome_or_subagent_items"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
