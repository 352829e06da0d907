"""`memproxy doctor` on who can call the listeners: other local users, the master key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memproxy_cli.config import parse_config
from memproxy_cli.doctor import access_checks
from tests.fixtures.daemon import memproxy

STRONG = "Zq3-r8TfLw0p_Yx2Vb7NcK4m"


def _config(text: str):  # type: ignore[no-untyped-def]
    return parse_config(text, "test.yaml")


def test_loopback_without_a_token_warns() -> None:
    result = access_checks.local_users(_config("{}"))
    assert result.status == "warn"
    assert "any local user" in result.found and "local_token" in (result.fix or "")


@pytest.mark.parametrize(
    "text",
    [
        "server: {local_token: true}",
        f"server: {{master_key: {STRONG}}}",
        f"server: {{host: 0.0.0.0, master_key: {STRONG}}}",
    ],
)
def test_a_secret_on_every_listener_is_ok(text: str) -> None:
    assert access_checks.local_users(_config(text)).status == "ok"


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("short-key-123", "shorter than 24"),
        ("a" * 40, "fewer than 10 different"),
        ("1212121212121212121212121212", "fewer than 10 different"),
    ],
)
def test_weak_master_key_warns_without_showing_it(key: str, why: str) -> None:
    result = access_checks.master_key_strength(key)
    assert result.status == "warn" and why in result.found
    assert key not in result.found + (result.fix or "")


def test_strong_master_key_is_ok() -> None:
    assert access_checks.master_key_strength(STRONG).status == "ok"


def test_master_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMPROXY_TEST_MASTER", raising=False)
    unset = access_checks.master_key_strength("os.environ/MEMPROXY_TEST_MASTER")
    assert unset.status == "fail" and "MEMPROXY_TEST_MASTER, which is not set" in unset.found
    monkeypatch.setenv("MEMPROXY_TEST_MASTER", "tiny-key-7")
    weak = access_checks.master_key_strength("os.environ/MEMPROXY_TEST_MASTER")
    assert weak.status == "warn" and "tiny-key-7" not in weak.found + (weak.fix or "")
    monkeypatch.setenv("MEMPROXY_TEST_MASTER", STRONG)
    assert access_checks.master_key_strength("os.environ/MEMPROXY_TEST_MASTER").status == "ok"


def test_doctor_reports_both(memproxy_home: Path) -> None:
    config = memproxy_home / "config.yaml"
    config.write_text("server:\n  master_key: os.environ/MEMPROXY_TEST_UNSET_MASTER\n")
    env = {"MEMPROXY_CONFIG": str(config), "MEMPROXY_TEST_UNSET_MASTER": ""}
    doc = json.loads(memproxy(memproxy_home, "doctor", "--json", "--offline", env=env).stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["master key"]["status"] == "fail"
    config.write_text("server:\n  port: 8799\n")
    doc = json.loads(memproxy(memproxy_home, "doctor", "--json", "--offline", env=env).stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["local users"]["status"] == "warn"
    assert "master key" not in checks


def test_project_limits_without_a_default_warn() -> None:
    loose = _config(
        "projects: {app: {allowed_models: [gpt-4o-mini]}}\nbudgets: {app: {daily_usd: 1}}"
    )
    result = access_checks.default_policy(loose)
    assert result.status == "warn"
    assert "projects" in result.found and "budgets" in result.found
    closed = _config(
        "projects: {app: {allowed_models: [gpt-4o-mini]}, '*': {allowed_models: []}}\n"
        "budgets: {app: {daily_usd: 1}, '*': {daily_usd: 0}}"
    )
    assert access_checks.default_policy(closed).status == "ok"
    assert access_checks.default_policy(_config("{}")).status == "ok"
