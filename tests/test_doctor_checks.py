"""Check functions called directly on real files, processes and sockets."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memproxy_cli.config import Config
from memproxy_cli.doctor import (
    config_checks,
    cookie_checks,
    daemon_checks,
    env_checks,
    memory_checks,
    port_checks,
    store_checks,
)
from memproxy_cli.paths import get_paths
from tests.fixtures.doctor_servers import GOOD_KEY, closed_port, fake_upstream, port_holder

GW = {8764, 8801}


def _by_name(results: list, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in results if r.name == name)


# environment


def test_base_url_elsewhere_warns_and_names_the_tools() -> None:
    env = {"OPENAI_BASE_URL": "https://user:pw-canary@proxy.example.com/v1?key=k-canary"}
    result = env_checks.base_url_target("OPENAI_BASE_URL", GW, env)
    assert result.status == "warn"
    assert "https://proxy.example.com/v1" in result.found and "Codex" in result.found
    assert "canary" not in result.found + (result.fix or "")


def test_base_url_at_the_gateway_or_a_project_port_is_ok() -> None:
    assert (
        env_checks.base_url_target(
            "ANTHROPIC_BASE_URL", GW, {"ANTHROPIC_BASE_URL": "http://127.0.0.1:8801"}
        ).status
        == "ok"
    )
    assert (
        env_checks.base_url_target(
            "OPENAI_API_BASE", GW, {"OPENAI_API_BASE": "http://localhost:8764/v1"}
        ).status
        == "ok"
    )
    assert (
        env_checks.base_url_target(
            "OPENAI_API_BASE", GW, {"OPENAI_API_BASE": "http://localhost:9999/v1"}
        ).status
        == "warn"
    )


def test_openai_bases_that_disagree_warn() -> None:
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:8764/v1", "OPENAI_API_BASE": "https://x.test/v1"}
    assert env_checks.openai_bases_agree(env).status == "warn"
    env["OPENAI_API_BASE"] = "http://127.0.0.1:8764/v1/"
    assert env_checks.openai_bases_agree(env).status == "ok"


def test_proxy_without_no_proxy_for_loopback_fails() -> None:
    env = {"https_proxy": "http://corp:secret-canary@proxy.corp:3128"}
    result = env_checks.proxy_bypasses_loopback(env)
    assert result.status == "fail" and "127.0.0.1" in result.found
    assert "NO_PROXY" in (result.fix or "") and "secret-canary" not in result.found
    for no_proxy in ("localhost,127.0.0.1", "*", "127.0.0.0/8,.localhost"):
        assert env_checks.proxy_bypasses_loopback({**env, "NO_PROXY": no_proxy}).status == "ok"
    assert env_checks.proxy_bypasses_loopback({**env, "no_proxy": "127.0.0.1"}).status == "warn"
    assert env_checks.proxy_bypasses_loopback({**env, "NO_PROXY": "10.0.0.1"}).status == "fail"


def test_litellm_overrides_are_listed_without_values() -> None:
    env = {
        "LITELLM_MODEL_COST_MAP_URL": "https://x.test/p.json",
        "LITELLM_LOG": "DEBUG",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    result = env_checks.litellm_overrides(env)
    assert result.status == "warn"
    assert "LITELLM_MODEL_COST_MAP_URL" in result.found and "LITELLM_LOG" in result.found
    assert "LITELLM_LOCAL_MODEL_COST_MAP" not in result.found and "x.test" not in result.found
    assert env_checks.litellm_overrides({"LITELLM_LOG": "ERROR"}).status == "ok"


# config


def test_bad_config_is_a_failure_naming_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 8000\nmemory:\n  top_k: lots\n")
    outcome = config_checks.check_config(str(path))
    assert outcome.config is None
    assert outcome.results[0].status == "fail"
    assert "c.yaml:4" in outcome.results[0].found and "memory.top_k" in outcome.results[0].found


def test_unset_env_reference_fails_and_unknown_keys_warn(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/gpt-4o\n"
        "      api_key: os.environ/DOCTOR_UNSET_KEY\nmemroy: {}\n"
    )
    results = config_checks.check_config(str(path)).results
    refs = _by_name(results, "config env references")
    assert refs.status == "fail"
    assert "model_list[0].litellm_params.api_key" in refs.found and "DOCTOR_UNSET_KEY" in refs.found
    keys = _by_name(results, "config keys")
    assert keys.status == "warn" and "memroy" in keys.found


def test_no_config_file_uses_defaults() -> None:
    outcome = config_checks.check_config(None)
    assert outcome.results[0].status == "ok" and outcome.config is not None


# daemon


def test_stale_pidfile_fails_with_the_rm_fix() -> None:
    paths = get_paths().ensure()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    paths.pidfile.write_text(str(proc.pid))
    [result] = daemon_checks.check_daemon(paths)
    assert result.status == "fail" and "stale pidfile" in result.found
    assert f"rm {paths.pidfile}" in (result.fix or "")


def test_pidfile_of_another_program_is_stale() -> None:
    paths = get_paths().ensure()
    paths.pidfile.write_text(str(os.getpid()))
    [result] = daemon_checks.check_daemon(paths)
    assert result.status == "fail" and "not memproxy" in result.found


def test_no_daemon_is_a_warning() -> None:
    [result] = daemon_checks.check_daemon(get_paths())
    assert result.status == "warn" and "memproxy up" in (result.fix or "")


# ports


def test_port_taken_by_another_process_names_it() -> None:
    with port_holder() as (port, pid):
        [result] = port_checks.check_ports(get_paths(), port)
    assert result.status == "fail"
    assert f"pid {pid} (python" in result.found
    assert "memproxy up --port" in (result.fix or "")


def test_registered_project_port_taken_suggests_detach() -> None:
    paths = get_paths().ensure()
    with port_holder() as (port, pid):
        registry = {"version": 1, "projects": {"alpha": {"port": port, "created_at": ""}}}
        paths.registry.write_text(json.dumps(registry))
        results = port_checks.check_ports(paths, closed_port())
    alpha = _by_name(results, f"port {port} (alpha)")
    assert alpha.status == "fail" and str(pid) in alpha.found
    assert "memproxy detach alpha" in (alpha.fix or "")


# store


def _store(db: Path, names: list[str]) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE _memproxy_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    conn.executemany("INSERT INTO _memproxy_migrations VALUES (?, 0)", [(n,) for n in names])
    conn.commit()
    conn.close()


def test_store_missing_is_fine_and_spill_rows_are_counted() -> None:
    paths = get_paths().ensure()
    results = store_checks.check_store(paths, None)
    assert [r.status for r in results] == ["ok", "ok"]
    paths.spill_file.write_text('{"a": 1}\n{"a": 2}\n')
    paths.spill_file.with_name(paths.spill_file.name + ".replay").write_text('{"a": 3}\n')
    spill = store_checks.spill_pending(paths.spill_file)
    assert spill.status == "warn" and spill.found.startswith("3 request rows")


def test_store_integrity_and_migrations() -> None:
    paths = get_paths().ensure()
    _store(paths.spend_db, ["m001_initial"])
    results = store_checks.check_store(paths, None)
    assert _by_name(results, "store integrity").status == "ok"
    migrations = _by_name(results, "store migrations")
    expected = store_checks._expected_migrations()
    assert migrations.status == ("ok" if expected == ["m001_initial"] else "warn")


def test_store_that_is_not_sqlite_fails() -> None:
    paths = get_paths().ensure()
    paths.spend_db.write_bytes(b"this is not a database" * 100)
    results = store_checks.check_store(paths, None)
    assert results[0].status == "fail" and "mv " in (results[0].fix or "")


def test_store_without_migrations_table_fails() -> None:
    paths = get_paths().ensure()
    conn = sqlite3.connect(paths.spend_db)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    result = _by_name(store_checks.check_store(paths, None), "store migrations")
    assert result.status == "fail" and "not a memproxy store" in result.found


# memory


def test_local_memory_store_readable_or_not_yet_created(tmp_path: Path) -> None:
    db = tmp_path / "memory.sqlite3"
    assert memory_checks.local_store(db).status == "ok"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE memories (id TEXT)")
    conn.execute("INSERT INTO memories VALUES ('a')")
    conn.commit()
    conn.close()
    result = memory_checks.local_store(db)
    assert result.status == "ok" and "1 memories" in result.found
    db.write_bytes(b"garbage" * 200)
    assert memory_checks.local_store(db).status == "fail"


def test_supermemory_key_missing_accepted_and_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_upstream() as base:
        config = Config.model_validate(
            {"memory": {"backend": "supermemory", "supermemory": {"base_url": f"{base}/sm"}}}
        )
        [missing] = memory_checks.check_memory(config, get_paths(), offline=False)
        assert missing.status == "fail" and "SUPERMEMORY_API_KEY" in (missing.fix or "")
        monkeypatch.setenv("SUPERMEMORY_API_KEY", GOOD_KEY)
        [accepted] = memory_checks.check_memory(config, get_paths(), offline=False)
        assert accepted.status == "ok" and "accepted" in accepted.found
        monkeypatch.setenv("SUPERMEMORY_API_KEY", "sm-canary-wrong")
        [rejected] = memory_checks.check_memory(config, get_paths(), offline=False)
    assert rejected.status == "fail" and "rejected the API key (HTTP 401)" in rejected.found
    assert "sm-canary-wrong" not in rejected.found + (rejected.fix or "")


# cookies


def _jar(path: Path, expires: float, mode: int) -> None:
    record = {
        "name": "cf_clearance",
        "value": "cookie-canary-value",
        "domain": "api.x.test",
        "expires": expires,
    }
    doc = {"version": 1, "origin": "https://api.x.test", "clients": {"aiohttp": [record]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    path.chmod(mode)


def test_cookie_jar_readable_by_others_fails_with_chmod() -> None:
    paths = get_paths()
    jar = paths.cookie_dir / "https_api.x.test.json"
    _jar(jar, time.time() + 3600, 0o644)
    results = cookie_checks.check_cookies(paths)
    perm = _by_name(results, f"cookies {jar.name}")
    assert perm.status == "fail" and "0644" in perm.found and perm.fix == f"chmod 600 {jar}"
    assert _by_name(results, f"cookies {jar.name} clearance").status == "ok"
    assert all("cookie-canary-value" not in r.found + (r.fix or "") for r in results)


def test_expired_clearance_warns_by_name() -> None:
    paths = get_paths()
    jar = paths.cookie_dir / "https_api.x.test.json"
    _jar(jar, time.time() - 60, 0o600)
    results = cookie_checks.check_cookies(paths)
    assert _by_name(results, f"cookies {jar.name}").status == "ok"
    clearance = _by_name(results, f"cookies {jar.name} clearance")
    assert clearance.status == "warn" and "cf_clearance" in clearance.found
    assert "cookie-canary-value" not in clearance.found


def test_every_reader_of_the_local_store_expands_home(
    memproxy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One function resolves memory.local.path: the doctor, `memory` commands and the daemon
    all look at the same file, `~` expanded."""
    from memproxy_cli.config import parse_config
    from memproxy_cli.doctor.memory_checks import check_memory
    from memproxy_cli.paths import get_paths

    monkeypatch.setenv("HOME", str(memproxy_home))
    config = parse_config("memory:\n  local:\n    path: ~/mem/store.sqlite3\n", "c.yaml")
    paths = get_paths()
    assert paths.local_memory(config.memory.local.path) == memproxy_home / "mem" / "store.sqlite3"
    [result] = check_memory(config, paths, offline=True)
    assert str(memproxy_home / "mem" / "store.sqlite3") in result.found


@pytest.mark.postgres
def test_store_checks_read_postgresql_too(postgres_url: str) -> None:
    from memproxy_cli.store.engine import open_engine
    from memproxy_cli.store.migrations import migrate

    paths = get_paths().ensure()
    results = store_checks.check_store(paths, postgres_url)
    assert _by_name(results, "store migrations").status == "fail"  # a fresh, empty database
    engine = open_engine(postgres_url, paths)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    results = store_checks.check_store(paths, postgres_url)
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert "password" not in str([r.found for r in results]).lower()
