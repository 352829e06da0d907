"""A config where memproxy does not look is named, not silently ignored; status names the file."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.daemon import free_port, memproxy, running_daemon, write_config


def test_doctor_and_up_name_a_config_in_the_wrong_place(memproxy_home: Path) -> None:
    wrong = memproxy_home / "config.yaml"  # the right place is $MEMPROXY_HOME/config/config.yaml
    wrong.write_text("server:\n  port: 9999\n", encoding="utf-8")
    doctor = memproxy(memproxy_home, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    config = checks["config"]
    assert config["status"] == "warn"
    assert str(wrong) in config["found"]
    assert str(memproxy_home / "config" / "config.yaml") in config["found"]
    port = free_port()
    up = memproxy(memproxy_home, "up", f"--port={port}")
    try:
        assert up.returncode == 0, up.stderr
        assert f"{wrong} is not read" in up.stderr
    finally:
        memproxy(memproxy_home, "down")


def test_doctor_names_the_default_path_when_there_is_no_config(memproxy_home: Path) -> None:
    doctor = memproxy(memproxy_home, "doctor", "--json")
    config = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}["config"]
    assert config["status"] == "ok"
    assert str(memproxy_home / "config" / "config.yaml") in config["found"]


def test_status_shows_the_config_the_daemon_runs_on(memproxy_home: Path) -> None:
    path = write_config(memproxy_home)
    with running_daemon(memproxy_home, free_port(), path) as status:
        assert status["config"] == str(path)
        text = memproxy(memproxy_home, "status").stdout
        assert f"config    {path}" in text
