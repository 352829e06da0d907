"""The real Gemini CLI, headless, through `memproxy run` on an attached project port."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import httpx
import pytest

from tests.fixtures.daemon import free_port, memproxy, running_daemon, wait_for, write_config
from tests.fixtures.fake_gemini import FakeGemini
from tests.fixtures.fake_messages import FakeMessages

pytestmark = pytest.mark.serial
GEMINI = Path(__file__).resolve().parents[1] / ".tools/gemini-cli/node_modules/.bin/gemini"
KEY = "gm-cli-test-not-a-real-key-0000"
# Nothing the CLI sends on its own (usage statistics, update checks, telemetry) may leave.
SETTINGS = {
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "security": {"auth": {"selectedType": "gemini-api-key"}},
}


class Fake(Protocol):
    async def start(self) -> Any: ...

    async def close(self) -> None: ...


F = TypeVar("F", bound=Fake)


class Threaded(Generic[F]):
    """A fake upstream on its own event loop thread, reachable by daemon processes."""

    def __init__(self, fake: F) -> None:
        self.loop = asyncio.new_event_loop()
        self.fake = fake
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> F:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)
        return self.fake

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def _gemini(
    home: Path, config: Path, workdir: Path, prompt: str, model: str | None = "gemini-2.5-flash"
) -> str:
    profile = home / "cli-home"
    (profile / ".gemini").mkdir(parents=True, exist_ok=True)
    (profile / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS), encoding="utf-8")
    env = {
        **os.environ,
        "MEMPROXY_HOME": str(home),
        "MEMPROXY_CONFIG": str(config),
        "GEMINI_API_KEY": KEY,
        "HOME": str(profile),  # a fresh Gemini CLI profile
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GEMINI_TELEMETRY_ENABLED": "false",
        "GEMINI_CLI_NO_RELAUNCH": "true",
        "NO_BROWSER": "true",
        # Anything not on loopback goes to a closed port and fails at once.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    chosen = ["-m", model] if model else []  # without -m the CLI routes each turn first
    command = [str(GEMINI), *chosen, "--yolo", "-p", prompt]
    result = subprocess.run(
        [sys.executable, "-m", "memproxy_cli", "run", "webapp", "--", *command],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
        cwd=workdir,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


QUERY_KEY = "gm-query-canary-5555ffff"


def _key_in_query(port: int) -> None:
    """A key in `?key=` on a served and on an unknown path is used, never written down."""
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(trust_env=False) as http:
        served = http.post(
            f"{base}/v1beta/models/gemini-2.5-flash:generateContent?key={QUERY_KEY}", json=body
        )
        assert served.status_code == 200, served.text
        unknown = http.post(f"{base}/v1beta/models/x:embedContent?key={QUERY_KEY}", json=body)
        assert unknown.status_code == 404 and QUERY_KEY not in unknown.text


def _rows(home: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(memproxy(home, "logs", "-n", "100", "--json").stdout)
    return rows


needs_cli = pytest.mark.skipif(
    not GEMINI.exists(), reason="Gemini CLI not installed (scripts/ensure-agent-clis)"
)


@needs_cli
def test_gemini_cli_answers_runs_a_tool_and_gets_project_memory(
    memproxy_home: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "webapp"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("The deploy target is blue-cluster.\n", encoding="utf-8")
    with Threaded(FakeGemini()) as fake:
        fake.behaviour.reply = "Noted: the cache is Redis 7 named blue-cache."
        closed = "http://127.0.0.1:9"
        upstreams = {"openai": closed, "anthropic": closed, "gemini": fake.base}
        config = write_config(memproxy_home, upstreams=upstreams)
        with running_daemon(memproxy_home, free_port(), config):
            attached = memproxy(
                memproxy_home,
                "attach",
                "webapp",
                "--json",
                env={"MEMPROXY_CONFIG": str(config)},
                check=True,
            )
            port = json.loads(attached.stdout)["port"]
            first = _gemini(
                memproxy_home,
                config,
                workdir,
                "Remember: our cache is Redis 7 named blue-cache",
                model=None,
            )
            assert "blue-cache" in first

            fake.script_tool_call("read_file", {"file_path": str(workdir / "notes.txt")})
            fake.script_text("notes.txt says the deploy target is blue-cluster.")
            second = _gemini(memproxy_home, config, workdir, "What does notes.txt say?")
            assert "blue-cluster" in second

            home = memproxy_home

            def remembered() -> bool:
                out = memproxy(home, "memory", "list", "--project", "webapp", "--json").stdout
                return "blue-cache" in out

            wait_for(remembered, what="the turn to be remembered")
            stored = memproxy(home, "memory", "list", "--project", "webapp", "--json").stdout
            assert "session_context" not in stored and "Directory Structure" not in stored
            assert "complexity" not in stored  # the router call is not a turn
            fake.behaviour.reply = "It is called blue-cache."
            _gemini(memproxy_home, config, workdir, "What is our cache called?")
            injected = wait_for(
                lambda: [r for r in _rows(home) if r["memories_injected"] > 0],
                what="a request with memories injected",
            )
            rows = _rows(home)
            _key_in_query(port)
            wait_for(
                lambda: len([r for r in _rows(home) if r["client"] == "httpx"]) == 2,
                what="rows for the calls with ?key=",
            )
    leaked = [
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file()
        and "cli-home" not in p.parts
        and (QUERY_KEY.encode() in p.read_bytes() or KEY.encode() in p.read_bytes())
    ]
    assert leaked == []
    generations = [r for r in rows if "Content" in (r["endpoint"] or "")]
    assert generations and all(r["project"] == "webapp" for r in generations)
    assert all(r["status"] == "ok" and r["prompt_tokens"] for r in generations)
    assert all(r["client"] == "gemini-cli" and r["client_version"] for r in generations)
    assert injected[0]["endpoint"].endswith(":streamGenerateContent")
    asked = [s.body for s in fake.generations]
    routed = [b for b in asked if "responseJsonSchema" in (b.get("generationConfig") or {})]
    assert routed and all("memproxy-memories" not in json.dumps(b) for b in routed)
    # The tool ran: its output went back to the model as a functionResponse.
    responses = [
        p["functionResponse"]
        for body in asked
        for c in body["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]
    assert any("blue-cluster" in json.dumps(r) for r in responses)
    # The fact told in the first session reached the model in the third.
    assert any(
        "blue-cache" in json.dumps(body["contents"][-1]) and "cache called" in json.dumps(body)
        for body in asked
    )
    assert set(fake.keys_used) == {KEY, QUERY_KEY}
    assert all("key=" not in s.query for s in fake.seen)


@needs_cli
def test_gemini_cli_drives_a_claude_model_with_tools(memproxy_home: Path, tmp_path: Path) -> None:
    """Gemini CLI on a configured Claude model: translated both ways, the tool loop included."""
    workdir = tmp_path / "webapp"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("The deploy target is blue-cluster.\n", encoding="utf-8")
    with Threaded(FakeGemini()) as gemini, Threaded(FakeMessages()) as claude:
        claude.script_tool_use("read_file", {"file_path": str(workdir / "notes.txt")})
        claude.script_text("Claude read it: the deploy target is blue-cluster.")
        closed = "http://127.0.0.1:9"
        config = write_config(
            memproxy_home,
            upstreams={"openai": closed, "anthropic": closed, "gemini": gemini.base},
            model_list=[
                {
                    "model_name": "claude-test",
                    "litellm_params": {
                        "model": "anthropic/claude-test-1",
                        "api_base": claude.base,
                        "api_key": "sk-ant-configured-cli-0000",
                    },
                }
            ],
        )
        with running_daemon(memproxy_home, free_port(), config):
            memproxy(
                memproxy_home, "attach", "webapp", env={"MEMPROXY_CONFIG": str(config)}, check=True
            )
            out = _gemini(memproxy_home, config, workdir, "What does notes.txt say?", "claude-test")
            rows = wait_for(
                lambda: [r for r in _rows(memproxy_home) if r["model"] == "claude-test"],
                what="rows for the translated calls",
            )
    assert "Claude read it: the deploy target is blue-cluster." in out
    asked = [s.body for s in claude.seen if s.path == "/v1/messages"]
    results = [
        b
        for body in asked
        for m in body["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert results and "blue-cluster" in json.dumps(results)
    assert all(s.headers["x-api-key"] == "sk-ant-configured-cli-0000" for s in claude.seen)
    assert all(r["provider"] == "litellm:anthropic" and r["status"] == "ok" for r in rows)
