"""Per-origin stats, the sessions.json snapshot and `memproxy sessions` (never values)."""

from __future__ import annotations

import json
import logging
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from memproxy_cli.cli import sessions_cmds
from memproxy_cli.paths import get_paths
from memproxy_cli.upstream.cloudflare import Verdict
from memproxy_cli.upstream.sessions import SessionManager
from tests.fixtures.fake_cloudflare import COOKIE, running

UPSTREAM = "https://api.example.com/v1/chat/completions"


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def manager_for_home() -> SessionManager:
    paths = get_paths().ensure()
    return SessionManager(paths.cookie_dir, save_delay_s=60)


def sessions_cli(*args: str) -> str:
    app = typer.Typer()
    sessions_cmds.register(app)
    app.command("noop", hidden=True)(lambda: None)  # keeps `sessions` a subcommand
    result = CliRunner().invoke(app, ["sessions", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Everything logged at DEBUG by any library during the test, in a file."""
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def test_record_counts_and_remembers_the_last_answer() -> None:
    manager = manager_for_home()
    manager.record(UPSTREAM, 200, {}, Verdict.OK)
    manager.record(UPSTREAM, 403, {"cf-mitigated": "challenge"}, Verdict.CHALLENGE)
    (entry,) = manager.snapshot()
    assert entry["origin"] == "https://api.example.com"
    assert entry["requests"] == 2
    assert entry["last_status"] == 403
    assert entry["last_verdict"] == "challenge"
    assert entry["last_seen"].endswith("Z")
    assert entry["backed_off_until"] is None and entry["cooldowns"] == []
    assert entry["cookies"] == []


async def test_stats_file_is_private_and_survives_a_restart() -> None:
    manager = manager_for_home()
    manager.record(UPSTREAM, 429, {"retry-after": "120"}, Verdict.RATE_LIMITED)
    await manager.close()
    stats_file = get_paths().state_dir / "sessions.json"
    assert stat.S_IMODE(stats_file.stat().st_mode) == 0o600
    restarted = manager_for_home()
    (entry,) = restarted.snapshot()
    assert entry["requests"] == 1 and entry["last_verdict"] == "rate_limited"
    # Cooldowns are the running daemon's (per deployment and caller key), never the file's.
    assert entry["backed_off_until"] is None and entry["cooldowns"] == []


async def test_stats_are_saved_soon_after_a_record() -> None:
    paths = get_paths().ensure()
    manager = SessionManager(paths.cookie_dir, save_delay_s=0.01)
    manager.record(UPSTREAM, 200, {}, Verdict.OK)
    stats_file = paths.state_dir / "sessions.json"
    deadline = time.monotonic() + 10
    while not stats_file.exists():
        assert time.monotonic() < deadline, "sessions.json was not written"
        await _tick()
    await manager.close()
    assert json.loads(stats_file.read_text())["sessions"][0]["requests"] == 1


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.01)


async def test_cookie_values_never_reach_snapshot_cli_or_log(debug_log: Path) -> None:
    manager = manager_for_home()
    async with running() as fake:
        url = fake.url + "/v1/chat/completions"
        for _ in range(2):
            async with manager.session_for(url).post(url, json={}) as resp:
                manager.record(url, resp.status, resp.headers, Verdict.OK)
        snapshot = manager.snapshot()
        await manager.close()
    (value,) = fake.issued
    assert [c["name"] for c in snapshot[0]["cookies"]] == [COOKIE]
    assert value not in json.dumps(snapshot)
    assert value not in read_text(get_paths().state_dir / "sessions.json")

    rows = json.loads(sessions_cli("--json"))
    (row,) = rows
    assert row["origin"] == fake.url
    assert row["requests"] == 2 and row["last_status"] == 200
    assert row["cookies"][0]["name"] == COOKIE and row["cookies"][0]["expires"].endswith("Z")
    table = sessions_cli()
    assert COOKIE in table and fake.url in table
    logged = read_text(debug_log)
    assert logged, "the debug log captured nothing, so it proves nothing"
    for shown in (json.dumps(rows), table, logged):
        assert value not in shown


def test_sessions_cli_with_nothing_yet() -> None:
    assert json.loads(sessions_cli("--json")) == []


def test_cli_side_of_sessions_does_not_import_aiohttp() -> None:
    code = (
        "import sys, memproxy_cli.cli.sessions_cmds, memproxy_cli.upstream.session_state;"
        "assert 'aiohttp' not in sys.modules and 'httpx' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
