"""The real Codex CLI, headless (`codex exec`), through an attached project port of the real
daemon: answers, a tool call it runs, a row per call, memory across sessions, and a Claude model
driven through translation. Codex never reaches the internet: its config turns off analytics,
feedback and update checks, and every non-loopback connection goes to a proxy that refuses it
and notes it (the tests assert it noted nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import agent_clis as cli
from tests.fixtures.daemon import free_port, memproxy, running_daemon, wait_for, write_config
from tests.fixtures.fake_messages import FakeMessages
from tests.fixtures.fake_responses import FakeResponses

pytestmark = pytest.mark.serial
needs_codex = pytest.mark.skipif(
    not cli.CODEX.exists(), reason="Codex CLI not installed (scripts/ensure-agent-clis)"
)
CODEX_KEY = "sk-fake-codex-key"  # what cli.codex_env gives Codex
FACT = "Remember: our billing invoices live in the bucket amber-ledger-42."


def _codex_user(root: Path) -> Path:
    home = root / "codex-user"
    for d in (home / "tmp", home / ".config"):
        d.mkdir(parents=True)
    return home


def _codex(env: dict[str, str], workdir: Path, prompt: str, *options: str) -> str:
    argv = cli.codex_argv(prompt)
    argv[2:2] = ["--strict-config", "--ephemeral", *options]
    result = cli.run(argv, env, workdir, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _attached(home: Path, config: Path, project: str) -> dict[str, Any]:
    out = memproxy(
        home, "attach", project, "--json", env={"MEMPROXY_CONFIG": str(config)}, check=True
    )
    attached: dict[str, Any] = json.loads(out.stdout)
    return attached


def _attach(home: Path, config: Path, project: str) -> str:
    """The project port's base, without /v1 (Codex's provider config adds it)."""
    return f"http://127.0.0.1:{_attached(home, config, project)['port']}"


def _rows(home: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(memproxy(home, "logs", "-n", "50", "--json").stdout)
    return rows


def _last_user_text(body: dict[str, Any]) -> str:
    users = [i for i in body["input"] if i.get("type") == "message" and i.get("role") == "user"]
    return json.dumps(users[-1]["content"])


def _tool_outputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in body["input"] if i.get("type") == "function_call_output"]


@needs_codex
def test_codex_answers_runs_a_tool_and_remembers(memproxy_home: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    fake = FakeResponses()
    with cli.threaded(fake), cli.RefusingProxy() as proxy:
        config = write_config(memproxy_home, fake.base, memory={"backend": "local"})
        with running_daemon(memproxy_home, free_port(), config):
            env = cli.codex_env(
                _codex_user(tmp_path), proxy, _attach(memproxy_home, config, "ledger")
            )
            fake.behaviour.reply = "Noted: the invoices bucket is amber-ledger-42."
            first = _codex(env, workdir, FACT)
            assert "Noted: the invoices bucket is amber-ledger-42." in first

            def remembered() -> bool:
                listed = memproxy(
                    memproxy_home, "memory", "list", "--project", "ledger", "--json"
                ).stdout
                return "amber-ledger-42" in listed

            wait_for(remembered, what="the first session's turn to be remembered")

            fake.script_tool_call(
                "exec_command",
                {"cmd": "echo memproxy-codex-tool > proof.txt"},
                call_id="call_codex_1",
            )
            fake.script_text("The bucket is amber-ledger-42; proof.txt is written.")
            second = _codex(
                env, workdir, "Where do our billing invoices live? Then write proof.txt."
            )
            assert "proof.txt is written" in second
            wait_for(
                lambda: (
                    len([r for r in _rows(memproxy_home) if r["endpoint"] == "/v1/responses"]) >= 3
                ),
                what="a row for each of the three calls",
            )
    assert proxy.tried == []  # Codex tried nothing beyond loopback
    assert (workdir / "proof.txt").read_text().strip() == "memproxy-codex-tool"
    told, asked, tool_turn = (r.body for r in fake.requests)
    assert "amber-ledger-42" in _last_user_text(told)
    assert "<memproxy-memories>" not in json.dumps(told)
    assert "<memproxy-memories>" in _last_user_text(asked)
    assert "amber-ledger-42" in _last_user_text(asked)
    [output] = _tool_outputs(tool_turn)
    assert output["call_id"] == "call_codex_1" and tool_turn["input"][-1] == output
    assert "<memproxy-memories>" not in json.dumps(tool_turn)  # a tool turn gets no recall
    assert all(r.headers["Authorization"] == f"Bearer {CODEX_KEY}" for r in fake.requests)
    all_rows = [r for r in _rows(memproxy_home) if r["endpoint"] == "/v1/responses"]
    assert len(all_rows) == 3
    for row in all_rows:
        assert row["project"] == "ledger" and row["status"] == "ok" and row["stream"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (21, 9)
        assert row["client"] == "codex_exec"
    assert [r["memories_injected"] for r in all_rows] == [0, 1, 0]


@needs_codex
def test_codex_drives_a_claude_model(memproxy_home: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    claude = FakeMessages()
    with cli.threaded(claude), cli.RefusingProxy() as proxy:
        model_list = [
            {
                "model_name": "claude-test",
                "litellm_params": {
                    "model": "anthropic/claude-test-1",
                    "api_base": claude.base,
                    "api_key": "sk-ant-configured-codex-0000",
                },
            }
        ]
        config = write_config(
            memproxy_home, "http://127.0.0.1:9", model_list=model_list, memory={"backend": "none"}
        )
        with running_daemon(memproxy_home, free_port(), config):
            base = _attach(memproxy_home, config, "claude-codex")
            env = cli.codex_env(_codex_user(tmp_path), proxy, base)
            claude.script_tool_use(
                "exec_command", {"cmd": "echo claude-drove-codex > proof.txt"}, text="On it."
            )
            claude.script_text("Claude wrote proof.txt.")
            out = _codex(env, workdir, "Write proof.txt with a shell command.", "-m", "claude-test")
            wait_for(
                lambda: (
                    len([r for r in _rows(memproxy_home) if r["endpoint"] == "/v1/responses"]) >= 2
                ),
                what="a row for each translated call",
            )
            rows = [r for r in _rows(memproxy_home) if r["endpoint"] == "/v1/responses"]
    assert proxy.tried == []
    assert "Claude wrote proof.txt." in out
    assert (workdir / "proof.txt").read_text().strip() == "claude-drove-codex"
    asked, tool_turn = (s.body for s in claude.seen if s.path == "/v1/messages")
    assert "exec_command" in [t["name"] for t in asked["tools"]]
    results = [
        block
        for message in tool_turn["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [])
        if block.get("type") == "tool_result"
    ]
    assert len(results) == 1 and "claude-drove-codex" not in json.dumps(asked)
    assert all(s.headers["x-api-key"] == "sk-ant-configured-codex-0000" for s in claude.seen)
    assert len(rows) == 2
    for row in rows:
        assert row["provider"] == "litellm:anthropic" and row["status"] == "ok"
        assert row["completion_tokens"] == 9 and row["project"] == "claude-codex"
        assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (5, 2)


@needs_codex
def test_codex_with_the_local_token_keeps_its_own_key(memproxy_home: Path, tmp_path: Path) -> None:
    """With `server.local_token` on, Codex sends the token in a header of its provider block
    (`env_http_headers`) and its own key as the API key: the token stays in memproxy."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    fake = FakeResponses()
    with cli.threaded(fake), cli.RefusingProxy() as proxy:
        config = write_config(
            memproxy_home, fake.base, server={"local_token": True}, memory={"backend": "none"}
        )
        with running_daemon(memproxy_home, free_port(), config):
            attached = _attached(memproxy_home, config, "tokened")
            token = attached["local_token"]
            assert token
            home = _codex_user(tmp_path)
            env = cli.codex_env(home, proxy, f"http://127.0.0.1:{attached['port']}")
            env["MEMPROXY_TOKEN"] = token
            codex_config = home / ".codex/config.toml"
            codex_config.write_text(
                codex_config.read_text(encoding="utf-8")
                + 'env_http_headers = { "x-memproxy-token" = "MEMPROXY_TOKEN" }\n',
                encoding="utf-8",
            )
            fake.behaviour.reply = "Answer behind the local token."
            out = _codex(env, workdir, "Say something")
            without = cli.run(
                cli.codex_argv("Say something"), {**env, "MEMPROXY_TOKEN": "x"}, workdir
            )
    assert "Answer behind the local token." in out
    assert without.returncode != 0  # a wrong token is refused
    assert proxy.tried == []
    [seen] = fake.requests
    assert seen.headers["Authorization"] == f"Bearer {CODEX_KEY}"
    assert "x-memproxy-token" not in seen.headers
    assert token not in json.dumps(dict(seen.headers)) + seen.raw.decode()
