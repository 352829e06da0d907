"""`memproxy top`: the live snapshot, its plain text, and the real view under tmux under load."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from memproxy_cli.cli.top_view import plain_text
from memproxy_cli.observability.live import LiveView
from tests.fixtures.daemon import (
    ThreadedFake,
    free_port,
    memproxy,
    running_daemon,
    wait_for,
    write_config,
)
from tests.fixtures.spend import make_row


def test_snapshot_aggregates_per_project_and_client() -> None:
    live = LiveView()
    now = 1_000_000.0
    live.started_at = now - 100
    for i in range(100):
        live.observe(make_row(started_at=now - 5, latency_ms=float(i + 1), client="claude-cli"))
    live.observe(make_row(project="beta", status="error", client="curl", memories_injected=2))
    snap = live.snapshot(inflight=3, now=now)
    assert snap["requests"] == 101 and snap["errors"] == 1 and snap["inflight"] == 3
    alpha = next(p for p in snap["projects"] if p["name"] == "alpha")
    assert alpha["requests"] == 100 and alpha["input_tokens"] == 1000
    assert alpha["latency_ms"] == {"p50": 50.0, "p99": 99.0}
    assert {c["name"] for c in snap["clients"]} == {"claude-cli", "curl"}
    assert snap["memories_injected"] == 2
    assert snap["recent"][0]["project"] == "beta"  # newest first
    text = plain_text(snap)
    assert "alpha" in text and "claude-cli" in text and "memories injected 2" in text
    assert "\x1b" not in text


def test_names_cannot_move_the_cursor() -> None:
    live = LiveView()
    live.observe(make_row(project="evil\x1b[2J\x1b]52;c;aGk=\x07name"))
    text = plain_text(live.snapshot())
    assert "\x1b" not in text and "\x07" not in text


def _send(url: str, stop: threading.Event, sent: list[int], limit: int = 5000) -> None:
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    while not stop.is_set() and len(sent) < limit:
        request = urllib.request.Request(
            url + "/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json", "x-memproxy-project": "top-under-load"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            sent.append(resp.status)


@contextmanager
def load(url: str) -> Iterator[list[int]]:
    """Requests in a loop (bounded in count) until the block ends."""
    stop, sent = threading.Event(), []
    thread = threading.Thread(target=_send, args=(url, stop, sent), daemon=True)
    thread.start()
    try:
        yield sent
    finally:
        stop.set()
        thread.join(30)


class Tmux:
    """A private tmux server (its own socket name) running one command in a wide window."""

    def __init__(self) -> None:
        self.socket = f"memproxy-test-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "top")


@pytest.mark.serial
def test_top_shows_requests_live_and_q_quits(memproxy_home: Path, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    rc_file = tmp_path / "rc"
    with ThreadedFake() as fake:
        config = write_config(memproxy_home, upstream=fake.base, memory={"backend": "none"})
        with running_daemon(memproxy_home, free_port(), config) as status, load(status["url"]):
            command = (
                f"env MEMPROXY_HOME={shlex.quote(str(memproxy_home))} NO_COLOR=1 "
                f"{shlex.quote(sys.executable)} -m memproxy_cli top --interval 0.2; "
                f"echo $? > {shlex.quote(str(rc_file))}"
            )
            tmux = Tmux()
            tmux.run("new-session", "-d", "-s", "top", "-x", "200", "-y", "60", command)
            try:
                first = wait_for(
                    lambda: (s := tmux.screen()) and "top-under-load" in s and s,
                    60,
                    "top to show the project under load",
                )
                assert "last requests" in first and "req/s" in first
                count = _requests_shown(first)
                wait_for(lambda: _requests_shown(tmux.screen()) > count, 60, "the view to refresh")
                tmux.run("send-keys", "-t", "top", "q")
                wait_for(rc_file.exists, 30, "top to exit on q")
                wait_for(lambda: rc_file.read_text().strip(), 10, "the exit status")
                assert rc_file.read_text().strip() == "0"
            finally:
                tmux.run("kill-server")


def _requests_shown(screen: str) -> int:
    for line in screen.splitlines():
        if line.startswith("requests "):
            return int(line.split()[1])
    return -1


@pytest.mark.serial
def test_top_without_a_terminal_prints_plain_text(memproxy_home: Path) -> None:
    with ThreadedFake() as fake:
        config = write_config(memproxy_home, upstream=fake.base, memory={"backend": "none"})
        with running_daemon(memproxy_home, free_port(), config) as status:
            with load(status["url"]) as sent:
                wait_for(lambda: len(sent) >= 5, 60, "some requests")
            result = memproxy(memproxy_home, "top", check=True)

            def snapshot() -> dict[str, Any]:
                return dict(json.loads(memproxy(memproxy_home, "top", "--json", check=True).stdout))

            wait_for(lambda: snapshot()["requests"] == len(sent), 30, "every request counted")
            last = snapshot()
    assert "top-under-load" in result.stdout and "last requests" in result.stdout
    assert "\x1b" not in result.stdout
    assert last["requests"] == len(sent) and last["errors"] == 0
    assert {r["project"] for r in last["recent"]} == {"top-under-load"}


def test_top_without_a_daemon_says_so(memproxy_home: Path) -> None:
    result = memproxy(memproxy_home, "top")
    assert result.returncode == 4 and "not running" in result.stderr
