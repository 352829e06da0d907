"""The real `memproxy doctor` process: exit codes, JSON shape, fixes, and no secret in output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.daemon import free_port, memproxy, running_daemon
from tests.fixtures.doctor_servers import closed_port, fake_upstream, port_holder

CANARIES = {
    "OPENAI_API_KEY": "sk-canary-env-8f3a",
    "SUPERMEMORY_API_KEY": "sm-canary-env-1c9d",
}
CONFIG_CANARY = "sk-canary-config-77e2"
REDIS_CANARY = "redis-canary-pw-4b1"
PROXY_CANARY = "proxy-canary-pw-0aa"


def _config(home: Path, port: int, **extra: Any) -> Path:
    raw: dict[str, Any] = {"server": {"port": port}}
    raw.update(extra)
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _doctor(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    result = memproxy(home, "doctor", "--json", *args, env=env)
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def _check(doc: Any, name: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["name"] == name)


def test_healthy_setup_exits_zero_offline(memproxy_home: Path) -> None:
    config = _config(memproxy_home, free_port())
    code, doc = _doctor(memproxy_home, "--offline", env={"MEMPROXY_CONFIG": str(config)})
    assert code == 0 and doc["ok"] is True
    assert {c["status"] for c in doc["checks"]} <= {"ok", "warn", "skip"}
    assert set(doc["checks"][0]) == {"name", "status", "found", "fix"}
    assert _check(doc, "upstreams")["status"] == "skip"


@pytest.mark.serial
def test_running_daemon_is_healthy_and_owns_its_port(memproxy_home: Path) -> None:
    port = free_port()
    config = _config(memproxy_home, port)
    with running_daemon(memproxy_home, port, config) as status:
        code, doc = _doctor(memproxy_home, "--offline", env={"MEMPROXY_CONFIG": str(config)})
    assert code == 0, doc
    assert _check(doc, "daemon")["status"] == "ok"
    assert str(status["pid"]) in _check(doc, "daemon")["found"]
    assert _check(doc, "daemon version")["status"] == "ok"
    assert _check(doc, f"port {port} (main)")["found"] == "memproxy listens here"


def test_bad_config_fails(memproxy_home: Path) -> None:
    bad = memproxy_home / "bad.yaml"
    bad.write_text("memory:\n  top_k: lots\n")
    code, doc = _doctor(memproxy_home, "--offline", "--config", str(bad))
    assert code == 1 and doc["ok"] is False
    check = _check(doc, "config")
    assert check["status"] == "fail" and "bad.yaml:2" in check["found"]
    assert _check(doc, "upstreams")["status"] == "skip"


def test_stale_pidfile_fails_with_fix(memproxy_home: Path) -> None:
    state = memproxy_home / "state"
    state.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    (state / "memproxy.pid").write_text(str(proc.pid))
    code, doc = _doctor(memproxy_home, "--offline")
    check = _check(doc, "daemon")
    assert code == 1 and check["status"] == "fail"
    assert check["fix"].startswith(f"rm {state / 'memproxy.pid'}")


def test_port_held_by_another_process_fails(memproxy_home: Path) -> None:
    with port_holder() as (port, pid):
        config = _config(memproxy_home, port)
        code, doc = _doctor(memproxy_home, "--offline", "--config", str(config))
    check = _check(doc, f"port {port} (main)")
    assert code == 1 and check["status"] == "fail" and f"pid {pid}" in check["found"]


def test_env_conflicts_are_named(memproxy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.elsewhere.test/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.test:3128")
    code, doc = _doctor(memproxy_home, "--offline")
    assert code == 1
    base = _check(doc, "env OPENAI_BASE_URL")
    assert base["status"] == "warn" and "api.elsewhere.test" in base["found"]
    proxy = _check(doc, "env proxy")
    assert proxy["status"] == "fail" and "NO_PROXY" in proxy["fix"]


def test_cloudflare_challenge_upstream_fails(memproxy_home: Path) -> None:
    with fake_upstream() as base:
        model = {
            "model_name": "m",
            "litellm_params": {"model": "openai/x", "api_base": f"{base}/cf/v1"},
        }
        config = _config(memproxy_home, free_port(), model_list=[model])
        code, doc = _doctor(memproxy_home, "--config", str(config))
    check = _check(doc, f"upstream {base}/cf/v1")
    assert code == 1 and check["status"] == "fail"
    assert "Cloudflare challenge" in check["found"]


def test_secrets_never_reach_output(memproxy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HTTPS_PROXY", f"http://me:{PROXY_CANARY}@proxy.corp.test:3128")
    with fake_upstream() as base:
        model = {
            "model_name": "m",
            "litellm_params": {
                "model": "openai/x",
                "api_base": f"{base}/oai/v1",
                "api_key": CONFIG_CANARY,
            },
        }
        config = _config(
            memproxy_home,
            free_port(),
            model_list=[model],
            upstreams={"openai": f"{base}/oai/v1", "anthropic": f"{base}/ant"},
            redis_url=f"redis://:{REDIS_CANARY}@127.0.0.1:{closed_port()}/0",
            memory={"backend": "supermemory", "supermemory": {"base_url": f"{base}/sm"}},
        )
        env = {"MEMPROXY_CONFIG": str(config), "COLUMNS": "400"}
        table = memproxy(memproxy_home, "doctor", env=env)
        as_json = memproxy(memproxy_home, "doctor", "--json", env=env)
    doc = json.loads(as_json.stdout)
    assert _check(doc, f"upstream {base}/oai/v1")["status"] == "fail"  # keys were sent
    assert _check(doc, "memory supermemory")["status"] == "fail"
    assert _check(doc, "redis")["status"] == "fail"
    assert "upstream" in table.stdout and "redis" in table.stdout
    everything = table.stdout + table.stderr + as_json.stdout + as_json.stderr
    for secret in (*CANARIES.values(), CONFIG_CANARY, REDIS_CANARY, PROXY_CANARY):
        assert secret not in everything
