"""Shared fixtures: every test gets its own MEMPROXY_HOME; no test reaches the internet."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixture modules live in tests/fixtures/; each test module imports what it needs from there.
pytest_plugins: list[str] = []
pytest_plugins += [
    "tests.fixtures.servers",
    "tests.fixtures.spend",
    "tests.fixtures.fake_upstreams",
]

_LEAKY_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "MEMPROXY_CONFIG",
    "SUPERMEMORY_API_KEY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


@pytest.fixture(autouse=True)
def memproxy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point all memproxy state at a fresh directory and scrub provider variables."""
    home = tmp_path / "memproxy-home"
    home.mkdir()
    monkeypatch.setenv("MEMPROXY_HOME", str(home))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for name in _LEAKY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    yield home


def require_service(name: str) -> None:
    """Skip when a server binary is missing, but fail in CI (MEMPROXY_REQUIRE_SERVICES=1)."""
    if os.environ.get("MEMPROXY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required in CI but not installed")
    pytest.skip(f"{name} not installed")
