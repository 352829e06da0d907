"""Recorded client sessions replayed through the real gateway: exactly what is stored, what not.

Each recording (tests/fixtures/clients/) is sent request by request as the client sent it; the
upstream answers each with what the client's next request shows the model said (replay.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import pytest

from memproxy_cli.api.registry import BY_NAME
from memproxy_cli.memory.backend import Memory, Turn
from tests.fixtures import replay
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

FINAL = "FINAL-ANSWER-{n}: all done."
# Text that must never be stored: client chrome, subagent prompts, tool outputs.
NEVER = (
    "system-reminder",
    "environment_context",
    "session_context",
    "subagent_notification",
    "Read notes.txt in the",
    "Complexity",
    "currentDate",
    "<env>",
    "Read the file notes.txt in the current directory",
    "SEARCH/REPLACE block* Rules",
    "EXACTLY MATCH",
    "blue-cluster.\\n",
    "1 passed in 0.01s",
    "00001|",
)


@dataclass(frozen=True)
class Expected:
    client_dir: str
    session: str
    turns: tuple[tuple[str, str, str], ...]  # (human words, a piece of the answer, the note)
    family: str = ""  # the API family the session needs (sessions of families not served wait)


CASES = [
    Expected(
        "claude-code-2.1.197",
        "tool-call-bash",
        (("Run `echo hi` and tell me what it printed.", "FINAL-ANSWER-", "ran echo"),),
    ),
    Expected(
        "claude-code-2.1.197",
        "subagent",
        (
            (
                "Use a subagent to find out what notes.txt says.",
                "FINAL-ANSWER-",
                "started a subagent",
            ),
        ),
    ),
    Expected(
        "opencode-synth",
        "tool-loop",
        (
            (
                "The staging database is pg-staging-3. The test in tests/test_app.py fails: "
                "fix src/app.py and run the tests.",
                "Fixed `add` in src/app.py",
                "read project/src/app.py, edited project/src/app.py, ran pytest",
            ),
            ("Thanks. Also lint the project with ruff.", "FINAL-ANSWER-", "ran ruff"),
        ),
    ),
    Expected(
        "aider-synth",
        "edit-format",
        (
            (
                "Our API rate limit is 600 requests per minute; set RETRIES to 5 in src/config.py.",
                "RETRIES = 5",
                "",
            ),
            (
                "Add a comment above RETRIES that explains it is tuned for the 600 rpm limit.",
                "FINAL-ANSWER-",
                "",
            ),
        ),
    ),
]


# Codex (Responses) and Gemini CLI sessions: they run once their API families are served.
LATER = [
    Expected(
        "codex-0.171.0",
        "plain-answer",
        (("Say hello in five words.", "FINAL-ANSWER-", ""),),
        "openai.responses",
    ),
    Expected(
        "codex-0.171.0",
        "tool-call-shell",
        (("Run `echo hi` in the shell and tell me what it printed.", "FINAL-ANSWER-", "ran echo"),),
        "openai.responses",
    ),
    Expected(
        "codex-0.171.0",
        "subagent",
        (
            (
                "Use a subagent to find out what notes.txt says.",
                "FINAL-ANSWER-",
                "started a subagent, used wait_agent",
            ),
        ),
        "openai.responses",
    ),
    Expected(
        "gemini-cli-0.61.0",
        "plain-answer",
        (("Say hello in five words.", "FINAL-ANSWER-", ""),),
        "gemini",
    ),
    Expected(
        "gemini-cli-0.61.0",
        "tool-call-shell",
        (("Run `echo hi` in the shell and tell me what it printed.", "FINAL-ANSWER-", "ran echo"),),
        "gemini",
    ),
    Expected(
        "gemini-cli-0.61.0",
        "tool-call-read-file",
        (("What does notes.txt say?", "FINAL-ANSWER-", "read notes.txt"),),
        "gemini",
    ),
    Expected(
        "gemini-cli-0.61.0",
        "subagent",
        (
            (
                "Use a subagent to find out what notes.txt says.",
                "FINAL-ANSWER-",
                "started a subagent",
            ),
        ),
        "gemini",
    ),
]


async def _replay(
    case: Expected, seed: Turn | None = None, **memory_settings: object
) -> tuple[list[Memory], list[str], dict[str, int]]:
    """Replay a session into project `p`; the memories stored, each response's count of
    memories injected and the turns not stored, by reason."""
    recording = replay.load(case.client_dir, case.session)
    wire = replay.wire_for(recording[0]["path"])
    upstream = await replay.ReplayUpstream(
        replay.replies(recording, wire, FINAL.format(n=0)), wire
    ).start()
    upstreams = {"openai": upstream.base, "anthropic": upstream.base}
    if "gemini" in BY_NAME:
        upstreams["gemini"] = upstream.base
    memory = {"backend": "local", **memory_settings}
    config = config_for(upstream.base, memory=memory, upstreams=upstreams)
    try:
        async with running_gateway(config, litellm=False) as gw:
            memory = gw.memory
            assert memory is not None
            backend = memory.backend_for(config.memory)
            assert backend is not None
            if seed is not None:
                await backend.add("p", seed)
            counts = await _send_all(gw, recording)
            await memory.drain(10)
            stored = [m for m in await backend.list("p") if "seeded" not in m.text]
            skipped = memory.stats.take().get("p", {})
    finally:
        await upstream.close()
    return stored, counts, skipped


async def _send_all(gw: RunningGateway, recording: list[dict[str, object]]) -> list[str]:
    counts = []
    async with aiohttp.ClientSession() as http:
        for request in recording:
            status, headers, body = await replay.send(http, gw.url, request, "p")  # type: ignore[arg-type]
            assert status == 200, body[:300]
            counts.append(headers["x-memproxy-memories"])
    return counts


@pytest.mark.parametrize("case", CASES + LATER, ids=lambda c: f"{c.client_dir}/{c.session}")
async def test_replayed_session_stores_each_human_turn_once(case: Expected) -> None:
    if case.family and case.family not in BY_NAME:
        pytest.skip(f"the {case.family} API family is not served yet")
    stored, _, _ = await _replay(case)
    texts = sorted(m.text for m in stored)
    expected = []
    for human, answer, note in case.turns:
        match = [t for t in texts if t.startswith(f"User: {human}\nAssistant: ")]
        assert len(match) == 1, (human, texts)
        assert answer in match[0]
        if note:
            assert match[0].endswith(f"\nActions: {note}"), match[0]
        else:
            assert "\nActions: " not in match[0]
        expected.append(match[0])
    assert len(stored) == len(case.turns), texts
    for memory in stored:
        for never in NEVER:
            assert never not in memory.text, (never, memory.text)
        assert memory.metadata.get("client"), memory.metadata


SEED = Turn(user="seeded: notes.txt is where the team keeps deploy notes", assistant="ok")


# Memories each request of a subagent session gets ("sub": the subagent's first request, which
# gets them only when configured to; its prompt looks like a new user message).
SUBAGENT_COUNTS = {
    "claude-code-2.1.197": ["1", "sub", "0", "0"],
    "codex-0.171.0": ["1", "0", "sub", "0", "0"],
    "gemini-cli-0.61.0": ["0", "1", "0", "sub", "0", "0"],  # router calls get none
}
SUBAGENT_CASES = [c for c in CASES + LATER if c.session == "subagent"]


@pytest.mark.parametrize("case", SUBAGENT_CASES, ids=lambda c: c.client_dir)
@pytest.mark.parametrize("into_subagents", [False, True])
async def test_subagent_gets_no_memories_and_its_prompt_is_not_stored(
    case: Expected, into_subagents: bool
) -> None:
    if case.family and case.family not in BY_NAME:
        pytest.skip(f"the {case.family} API family is not served yet")
    stored, counts, skipped = await _replay(case, SEED, recall_into_subagents=into_subagents)
    sub = "1" if into_subagents else "0"
    assert counts == [sub if c == "sub" else c for c in SUBAGENT_COUNTS[case.client_dir]]
    assert [m.text.split("\n")[0] for m in stored] == [
        "User: Use a subagent to find out what notes.txt says."
    ]
    assert skipped.get("subagent") == 1, skipped  # counted once, whoever the client


async def test_aider_instructions_are_stripped_and_counted() -> None:
    stored, _, _ = await _replay(CASES[3])
    assert all(len(m.text) < 400 for m in stored), [m.text for m in stored]
    assert all(m.metadata.get("chrome_chars", 0) > 1000 for m in stored)
