"""The real `memproxy up` / `down` / `status` / `attach` processes, driven like a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anthropic
import openai
import pytest
import yaml

from memproxy_cli.daemon.process import pid_alive
from tests.fixtures.daemon import (
    ThreadedFake,
    free_port,
    memproxy,
    running_daemon,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.serial


def test_up_status_down_roundtrip(memproxy_home: Path) -> None:
    port = free_port()
    with ThreadedFake() as fake:
        config = write_config(memproxy_home, fake.base)
        with running_daemon(memproxy_home, port, config) as status:
            assert status["running"] is True
            assert status["url"] == f"http://127.0.0.1:{port}"
            assert status["version"] == status["cli_version"]
            again = memproxy(memproxy_home, "up", f"--port={port}", f"--config={config}")
            assert again.returncode == 0 and "already running" in again.stderr
            oai = openai.OpenAI(base_url=status["url"] + "/v1", api_key="sk-t", max_retries=0)
            reply = oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content == "Hello from the fake upstream."
            pid = status["pid"]
        assert not pid_alive(pid)
    gone = memproxy(memproxy_home, "status", "--json")
    assert gone.returncode == 4 and json.loads(gone.stdout)["running"] is False
    log = (memproxy_home / "logs" / "memproxy.log").read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    assert any(entry.get("model") == "gpt-4o-mini" for entry in lines)
    assert "sk-t" not in log


def test_invalid_config_names_key_and_line(memproxy_home: Path) -> None:
    bad = memproxy_home / "bad.yaml"
    bad.write_text("server:\n  port: 8000\nmemory:\n  top_k: lots\n")
    result = memproxy(memproxy_home, "up", f"--config={bad}")
    assert result.returncode == 3
    assert "bad.yaml:4" in result.stderr and "memory.top_k" in result.stderr
    assert "Traceback" not in result.stderr


def test_attach_restart_restores_listeners(memproxy_home: Path) -> None:
    port = free_port()
    with ThreadedFake() as fake:
        config = write_config(memproxy_home, fake.base)
        env = {"MEMPROXY_CONFIG": str(config)}
        with running_daemon(memproxy_home, port, config):
            a = json.loads(
                memproxy(memproxy_home, "attach", "alpha", "--json", env=env, check=True).stdout
            )
            b = json.loads(
                memproxy(memproxy_home, "attach", "beta", "--json", env=env, check=True).stdout
            )
            again = json.loads(
                memproxy(memproxy_home, "attach", "alpha", "--json", env=env, check=True).stdout
            )
            assert again["port"] == a["port"] != b["port"]
            assert a["openai_base_url"] == f"http://127.0.0.1:{a['port']}/v1"
            ant = anthropic.Anthropic(base_url=a["anthropic_base_url"], api_key="k", max_retries=0)
            ant.messages.create(
                model="claude-test-1", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
        # Restart: every registered listener comes back on its port.
        with running_daemon(memproxy_home, port, config) as status:
            assert {x["project"]: x["port"] for x in status["listeners"]} == {
                "alpha": a["port"],
                "beta": b["port"],
            }
            ports = json.loads(memproxy(memproxy_home, "ports", "--json", check=True).stdout)
            assert {p["project"]: p["state"] for p in ports} == {
                "alpha": "listening",
                "beta": "listening",
            }
            oai = openai.OpenAI(base_url=b["openai_base_url"], api_key="k", max_retries=0)
            oai.chat.completions.create(
                model="memproxy/echo", messages=[{"role": "user", "content": "x"}]
            )
            memproxy(memproxy_home, "detach", "beta", check=True)
            # The kept-alive connection is refused; a new one cannot connect at all.
            with pytest.raises(openai.APIStatusError) as gone:
                oai.chat.completions.create(
                    model="memproxy/echo", messages=[{"role": "user", "content": "x"}]
                )
            assert gone.value.status_code == 410
            fresh = openai.OpenAI(base_url=b["openai_base_url"], api_key="k", max_retries=0)
            with pytest.raises(openai.APIConnectionError):
                fresh.chat.completions.create(
                    model="memproxy/echo", messages=[{"role": "user", "content": "x"}]
                )
    log = (memproxy_home / "logs" / "memproxy.log").read_text()
    projects = [json.loads(line).get("project") for line in log.splitlines()]
    assert "alpha" in projects and "beta" in projects


def test_parallel_attach_gets_distinct_ports(memproxy_home: Path) -> None:
    port = free_port()
    config = write_config(memproxy_home)
    with running_daemon(memproxy_home, port, config):
        env = {
            **os.environ,
            "MEMPROXY_HOME": str(memproxy_home),
            "MEMPROXY_CONFIG": str(config),
            "NO_COLOR": "1",
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "memproxy_cli", "attach", f"proj-{i}", "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i in range(20)
        ]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
        ports = {r["port"] for r in results}
        assert len(ports) == 20
        status = json.loads(memproxy(memproxy_home, "status", "--json", check=True).stdout)
        assert len(status["listeners"]) == 20


def test_foreign_port_is_skipped_and_reported(memproxy_home: Path) -> None:
    port = free_port()
    config = write_config(memproxy_home)
    first = yaml.safe_load(config.read_text())["listeners"]["port_range_start"]
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", first))  # the first port of the range
    blocker.listen()
    try:
        with running_daemon(memproxy_home, port, config):
            result = memproxy(
                memproxy_home,
                "attach",
                "gamma",
                "--json",
                check=True,
                env={"MEMPROXY_CONFIG": str(config)},
            )
            assert json.loads(result.stdout)["port"] == first + 1
            assert str(first) in result.stderr
    finally:
        blocker.close()


def test_down_drains_inflight_stream(memproxy_home: Path) -> None:
    port = free_port()
    with ThreadedFake() as fake:
        fake.behaviour.chunk_delay_s = 0.3
        config = write_config(memproxy_home, fake.base)
        with running_daemon(memproxy_home, port, config) as status:
            oai = openai.OpenAI(base_url=status["url"] + "/v1", api_key="k", max_retries=0)
            stream = oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            first = next(iter(stream))
            os.kill(status["pid"], signal.SIGTERM)
            rest = list(stream)
            text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
            assert text == "Hello from the fake upstream."
            wait_for(lambda: not pid_alive(status["pid"]), what="daemon exit after drain")
