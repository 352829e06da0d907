"""The real Codex CLI and Gemini CLI on an attached project port of the real daemon: a turn that
states a fact and runs a tool is one memory (the human's words and the final answer, never the
tool's output), and a new conversation gets that fact injected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memproxy_cli.memory.strategies import BLOCK_OPEN
from tests.fixtures import agent_clis as cli
from tests.fixtures.daemon import free_port, memproxy, running_daemon, wait_for, write_config
from tests.fixtures.fake_gemini import FakeGemini
from tests.fixtures.fake_responses import FakeResponses

pytestmark = pytest.mark.serial

FACT = "Remember: our release branch is called amber-train-9. Then run the {n} smoke check."
FINAL = "The {n} smoke check passed. Noted: the release branch is amber-train-9."
ASK = "Which release branch do we use?"
TOOL_OUTPUT = "tool-output-{n}-7f3a"  # what the tool prints: it reaches the model, never a memory
CLOSED = "http://127.0.0.1:9"


def _memories(home: Path, config: Path) -> list[dict[str, Any]]:
    out = memproxy(
        home, "memory", "list", "-p", "webapp", "--json", env={"MEMPROXY_CONFIG": str(config)}
    ).stdout
    return json.loads(out) if out.strip() else []


def _attach(home: Path, config: Path) -> int:
    out = memproxy(
        home, "attach", "webapp", "--json", env={"MEMPROXY_CONFIG": str(config)}, check=True
    )
    return int(json.loads(out.stdout)["port"])


def _run(argv: list[str], env: dict[str, str], project: Path) -> str:
    result = cli.run(argv, env, project, timeout=240)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


def _the_fact_turn(memories: list[dict[str, Any]], n: str) -> dict[str, Any]:
    [fact] = [m for m in memories if FACT.format(n=n) in m["text"]]
    return fact


def _assert_remembered(fact: dict[str, Any], n: str, client: str) -> None:
    assert fact["text"] == (
        f"User: {FACT.format(n=n)}\nAssistant: {FINAL.format(n=n)}\nActions: ran echo"
    )
    assert fact["metadata"]["client"] == client


@pytest.mark.skipif(not cli.CODEX.exists(), reason="Codex CLI not installed (ensure-agent-clis)")
def test_codex_tool_turn_is_remembered_and_recalled(memproxy_home: Path) -> None:
    n = "codex"
    fake = FakeResponses()
    with cli.RefusingProxy() as proxy, cli.sandbox() as (home, project, _), cli.threaded(fake):
        config = write_config(memproxy_home, fake.base, memory={"backend": "local"})
        with running_daemon(memproxy_home, free_port(), config):
            base = f"http://127.0.0.1:{_attach(memproxy_home, config)}"
            env = cli.codex_env(home, proxy, base)
            fake.script_tool_call("exec_command", {"cmd": f"echo {TOOL_OUTPUT.format(n=n)}"})
            fake.script_text(FINAL.format(n=n))
            assert FINAL.format(n=n) in _run(cli.codex_argv(FACT.format(n=n)), env, project)
            wait_for(
                lambda: any(
                    FACT.format(n=n) in m["text"] for m in _memories(memproxy_home, config)
                ),
                what="the tool-using turn to be remembered",
            )
            fake.behaviour.reply = "We use amber-train-9."
            _run(cli.codex_argv(ASK), env, project)
            memories = _memories(memproxy_home, config)
    assert proxy.tried == []
    _assert_remembered(_the_fact_turn(memories, n), n, "codex_exec")
    told, tool_leg, *_, asked = (r.body for r in fake.requests)
    outputs = [i for i in tool_leg["input"] if i.get("type") == "function_call_output"]
    assert outputs and TOOL_OUTPUT.format(n=n) in json.dumps(outputs)  # the tool really ran
    assert all(TOOL_OUTPUT.format(n=n) not in m["text"] for m in memories)
    assert "<memproxy-memories>" not in json.dumps(told)
    users = [i for i in asked["input"] if i.get("type") == "message" and i.get("role") == "user"]
    last = json.dumps(users[-1]["content"])
    assert ASK in last and "amber-train-9" in last and json.dumps(BLOCK_OPEN)[1:-1] in last


@pytest.mark.skipif(not cli.GEMINI.exists(), reason="Gemini CLI not installed (ensure-agent-clis)")
def test_gemini_cli_tool_turn_is_remembered_and_recalled(memproxy_home: Path) -> None:
    n = "gemini"
    fake = FakeGemini()
    with cli.RefusingProxy() as proxy, cli.sandbox() as (home, project, _), cli.threaded(fake):
        upstreams = {"openai": CLOSED, "anthropic": CLOSED, "gemini": fake.base}
        config = write_config(memproxy_home, upstreams=upstreams, memory={"backend": "local"})
        with running_daemon(memproxy_home, free_port(), config):
            env = cli.gemini_env(home, proxy, f"http://127.0.0.1:{_attach(memproxy_home, config)}")
            fake.script_tool_call(
                "run_shell_command", {"command": f"echo {TOOL_OUTPUT.format(n=n)}"}
            )
            fake.script_text(FINAL.format(n=n))
            assert FINAL.format(n=n) in _run(cli.gemini_argv(FACT.format(n=n)), env, project)
            wait_for(
                lambda: any(
                    FACT.format(n=n) in m["text"] for m in _memories(memproxy_home, config)
                ),
                what="the tool-using turn to be remembered",
            )
            fake.behaviour.reply = "We use amber-train-9."
            _run(cli.gemini_argv(ASK), env, project)
            memories = _memories(memproxy_home, config)
    assert proxy.tried == []
    _assert_remembered(_the_fact_turn(memories, n), n, "gemini-cli")
    agent_turns = [s.body for s in fake.generations if s.body.get("tools")]
    responses = [
        p["functionResponse"]
        for body in agent_turns
        for c in body["contents"]
        for p in c.get("parts") or []
        if "functionResponse" in p
    ]
    assert responses and TOOL_OUTPUT.format(n=n) in json.dumps(responses)  # the tool really ran
    for memory in memories:
        assert TOOL_OUTPUT.format(n=n) not in memory["text"]
        assert "session_context" not in memory["text"] and "complexity" not in memory["text"]
    told, asked = agent_turns[0], agent_turns[-1]
    assert "<memproxy-memories>" not in json.dumps(told)
    last = json.dumps(asked["contents"][-1])
    assert ASK in last and "amber-train-9" in last and json.dumps(BLOCK_OPEN)[1:-1] in last
