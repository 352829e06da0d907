"""The real Claude Code CLI, headless, through `memproxy run` on an attached project port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.daemon import (
    ThreadedFake,
    free_port,
    memproxy,
    running_daemon,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.serial
CLAUDE = Path(__file__).resolve().parents[1] / ".tools/claude-code/node_modules/.bin/claude"


def _claude(home: Path, config: Path, prompt: str) -> str:
    env = {
        **os.environ,
        "MEMPROXY_HOME": str(home),
        "MEMPROXY_CONFIG": str(config),
        "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key-0000",
        "HOME": str(home),  # a fresh Claude Code profile
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "memproxy_cli", "run", "webapp", "--", str(CLAUDE), "-p", prompt],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
        cwd=home,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(
    not CLAUDE.exists(), reason="Claude Code not installed (scripts/ensure-claude-code)"
)
def test_claude_code_gets_project_memory(memproxy_home: Path) -> None:
    with ThreadedFake() as fake:
        fake.behaviour.reply = "Pong from the fake Anthropic upstream."
        config = write_config(memproxy_home, fake.base)
        with running_daemon(memproxy_home, free_port(), config):
            memproxy(
                memproxy_home, "attach", "webapp", env={"MEMPROXY_CONFIG": str(config)}, check=True
            )
            first = _claude(
                memproxy_home, config, "Remember: our cache is Redis 7 named blue-cache"
            )
            assert "Pong from the fake Anthropic upstream." in first
            home = memproxy_home

            def remembered() -> bool:
                out = memproxy(home, "memory", "list", "--project", "webapp", "--json").stdout
                return "blue-cache" in out

            wait_for(remembered, what="the turn to be remembered")
            _claude(memproxy_home, config, "What is our cache called?")
            rows = wait_for(
                lambda: [
                    r
                    for r in json.loads(memproxy(home, "logs", "-n", "50", "--json").stdout)
                    if r["memories_injected"] > 0
                ],
                what="a request with memories injected",
            )
    assert rows[0]["project"] == "webapp" and rows[0]["client"] == "claude-cli"
    assert rows[0]["client_session"]
    asked = [s.body for s in fake.seen if s.path == "/v1/messages"]
    assert any(
        "blue-cache" in json.dumps(body["messages"]) and "cache called" in json.dumps(body)
        for body in asked
    )
    assert all(
        s.headers.get("x-api-key") == "sk-ant-test-not-a-real-key-0000"
        for s in fake.seen
        if s.path == "/v1/messages"
    )
