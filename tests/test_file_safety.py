"""What the daemon writes is its owner's alone: modes, ownership, symlinks, the pid it signals."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from memproxy_cli.daemon.process import pid_alive
from memproxy_cli.upstream.cookies import FORMAT_VERSION, cookie_file_for, read_cookie_file
from tests.fixtures.daemon import free_port, memproxy, running_daemon, wait_for, write_config

pytestmark = pytest.mark.serial


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _loose_home(home: Path) -> list[Path]:
    """A home made by an older memproxy under umask 022: 0755 directories, 0644 files."""
    made = []
    for name in ("data", "state", "state/cookies", "logs"):
        (home / name).mkdir(mode=0o755, exist_ok=True)
        os.chmod(home / name, 0o755)
    for name in ("logs/memproxy.log", "logs/startup.log", "state/sessions.json"):
        path = home / name
        path.write_text("" if name.endswith("log") else "{}")
        os.chmod(path, 0o644)
        made.append(path)
    jar = cookie_file_for(home / "state" / "cookies", "https://api.example.com")
    jar.write_text(json.dumps({"version": FORMAT_VERSION, "origin": "x", "clients": {}}))
    os.chmod(jar, 0o644)
    return [*made, jar]


def test_daemon_files_are_0600_and_directories_0700_also_when_they_existed(
    memproxy_home: Path,
) -> None:
    old = _loose_home(memproxy_home)
    config = write_config(memproxy_home, memory={"backend": "local"})
    with running_daemon(memproxy_home, free_port(), config) as status:
        assert status["running"] is True
        for path in old:
            assert _mode(path) == 0o600, path
        for directory in ("data", "state", "state/cookies", "logs"):
            assert _mode(memproxy_home / directory) == 0o700, directory
        written = [
            p
            for d in ("data", "state", "logs")
            for p in (memproxy_home / d).rglob("*")
            if p.is_file() and not p.is_symlink()
        ]
        assert {p.name for p in written} >= {"memproxy.pid", "daemon.json", "startup.log"}
        assert {p.name: _mode(p) for p in written} == {p.name: 0o600 for p in written}


def test_a_memproxy_home_of_another_user_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign-home"
    foreign.mkdir()
    os.chown(foreign, 65534, 65534)
    for args in (("up", f"--port={free_port()}"), ("attach", "app")):
        result = memproxy(foreign, *args)
        assert result.returncode == 1
        assert "belongs to another user" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert list(foreign.iterdir()) == []


@pytest.mark.parametrize("name", ["logs/memproxy.log", "logs/startup.log"])
def test_a_symlinked_log_is_never_written_through(
    memproxy_home: Path, tmp_path: Path, name: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (memproxy_home / "logs").mkdir()
    (memproxy_home / name).symlink_to(victim)
    result = memproxy(memproxy_home, "up", f"--port={free_port()}")
    assert result.returncode == 4
    assert "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert victim.read_text() == "precious\n"
    assert memproxy(memproxy_home, "status").returncode == 4


def test_a_symlinked_cookie_jar_is_not_read(tmp_path: Path) -> None:
    jar_dir = tmp_path / "cookies"
    jar_dir.mkdir()
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"version": FORMAT_VERSION, "origin": "o", "clients": {}}))
    assert read_cookie_file(target) is not None
    link = cookie_file_for(jar_dir, "o")
    link.symlink_to(target)
    assert read_cookie_file(link) is None


def test_down_signals_only_a_memproxy_process(memproxy_home: Path) -> None:
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        state = memproxy_home / "state"
        state.mkdir()
        (state / "memproxy.pid").write_text(f"{stranger.pid}\n")
        result = memproxy(memproxy_home, "down")
        assert result.returncode == 4
        assert "not memproxy" in result.stderr
        assert stranger.poll() is None and pid_alive(stranger.pid)
    finally:
        stranger.kill()
        stranger.wait()


def test_down_still_stops_the_real_daemon(memproxy_home: Path) -> None:
    with running_daemon(memproxy_home, free_port(), write_config(memproxy_home)) as status:
        pid = status["pid"]
        result = memproxy(memproxy_home, "down")
        assert result.returncode == 0 and "stopped" in result.stderr
    wait_for(lambda: not pid_alive(pid), what="the daemon to exit")
