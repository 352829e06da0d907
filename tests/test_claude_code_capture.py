"""The real Claude Code CLI on an attached project port of the real daemon: what memory keeps.

A turn that states a fact and runs a tool is one memory with the final answer; a new conversation
gets the fact injected; a subagent's prompt, Claude Code's reminders and a slash command's
wrapper are never stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memproxy_cli.memory.strategies import BLOCK_OPEN
from tests.fixtures import agent_clis as cli
from tests.fixtures.daemon import free_port, memproxy, running_daemon, wait_for, write_config
from tests.fixtures.fake_messages import FakeMessages

pytestmark = [
    pytest.mark.serial,
    pytest.mark.skipif(
        not cli.CLAUDE.exists(), reason="Claude Code not installed (scripts/ensure-claude-code)"
    ),
]

FACT_PROMPT = "Remember: our deploy target is blue-cluster-7. Then run `echo hi` and tell me."
FINAL = "It printed hi. Noted: the deploy target is blue-cluster-7."
SUBAGENT_PROMPT = "Read the file notes.txt in the current directory"
NEVER = ("system-reminder", "currentDate", "command-name", "command-message", "command-args")


def _memories(home: Path, config: Path) -> list[dict[str, Any]]:
    out = memproxy(
        home, "memory", "list", "-p", "webapp", "--json", env={"MEMPROXY_CONFIG": str(config)}
    ).stdout
    return json.loads(out) if out.strip() else []


def _user_parts(memories: list[dict[str, Any]]) -> list[str]:
    return [m["text"].split("\nAssistant: ")[0].removeprefix("User: ") for m in memories]


def test_claude_code_sessions_are_remembered_as_human_turns(memproxy_home: Path) -> None:
    fake = FakeMessages()
    fake.script_tool_use(
        "Bash", {"command": "echo hi", "description": "Print hi"}, "Let me run it."
    )
    fake.script_text(FINAL)
    with cli.RefusingProxy() as proxy, cli.sandbox() as (home, project, _), cli.threaded(fake):
        config = write_config(memproxy_home, fake.base)
        env_daemon = {"MEMPROXY_CONFIG": str(config)}
        with running_daemon(memproxy_home, free_port(), config):
            attached = memproxy(memproxy_home, "attach", "webapp", "--json", env=env_daemon)
            base = json.loads(attached.stdout)["anthropic_base_url"]
            env = cli.claude_env(home, proxy, base)

            def claude(*argv: str) -> str:
                result = cli.run([str(cli.CLAUDE), *argv], env, project)
                assert result.returncode == 0, result.stderr[-2000:]
                return result.stdout

            assert FINAL in claude("-p", FACT_PROMPT, "--allowedTools", "Bash")
            wait_for(
                lambda: any(
                    FACT_PROMPT in t for t in _user_parts(_memories(memproxy_home, config))
                ),
                what="the tool-using turn to be remembered",
            )

            commands = project / ".claude" / "commands"
            commands.mkdir(parents=True)
            (commands / "shout.md").write_text("Reply with the word PONG in capitals. $ARGUMENTS\n")
            fake.script_text("PONG")
            claude("-p", "/shout quickly")
            wait_for(
                lambda: len(_memories(memproxy_home, config)) == 2,
                what="the slash command's turn to be remembered",
            )

            fake.script_subagent()
            assert "blue-cluster" in claude("-p", "Use a subagent to read notes.txt", *_agents())
            wait_for(
                lambda: len(_memories(memproxy_home, config)) == 3,
                what="the subagent turn to be remembered",
            )
            fake.script_text("It is blue-cluster-7.")
            claude("-p", "Which deploy target do we use?")
            memories = _memories(memproxy_home, config)

    user_parts = _user_parts(memories)
    assert FACT_PROMPT in user_parts
    [fact] = [m for m in memories if FACT_PROMPT in m["text"]]
    assert fact["text"] == f"User: {FACT_PROMPT}\nAssistant: {FINAL}\nActions: ran echo"
    assert fact["metadata"]["client"] == "claude-cli"
    assert "Reply with the word PONG in capitals. quickly" in user_parts
    assert "Use a subagent to read notes.txt" in user_parts
    for memory in memories:
        assert SUBAGENT_PROMPT not in memory["text"], memory
        for never in NEVER:
            assert never not in memory["text"], memory
    agents = [s.headers.get("x-claude-code-agent-id") for s in fake.seen]
    assert any(agents), "a subagent ran"
    subagent_bodies = [
        json.dumps(s.body) for s in fake.seen if s.headers.get("x-claude-code-agent-id")
    ]
    assert subagent_bodies and all("memproxy-memories" not in b for b in subagent_bodies)
    last = json.dumps(fake.seen[-1].body["messages"])
    assert "Which deploy target do we use?" in last
    assert "blue-cluster-7" in last and json.dumps(BLOCK_OPEN)[1:-1] in last


def _agents() -> tuple[str, ...]:
    return ("--allowedTools", "Bash,Read,Task,Agent")
