"""`server.master_key: os.environ/NAME` is the value of NAME, never the reference's own text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from memproxy_cli.config import parse_config
from tests.fixtures.daemon import free_port, memproxy, running_daemon, write_config
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

ECHO = {"model": "memproxy/echo", "messages": [{"role": "user", "content": "hi"}]}
SECRET = "mk-from-the-environment-4242-abcdef"
REFERENCE = "os.environ/MEMPROXY_TEST_MASTER_KEY"


async def _status(url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions", json=ECHO, headers=headers) as resp:
            return resp.status


@pytest.fixture
async def referenced(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningGateway]:
    monkeypatch.setenv("MEMPROXY_TEST_MASTER_KEY", SECRET)
    config = config_for("http://127.0.0.1:9", server={"master_key": REFERENCE})
    async with running_gateway(config, litellm=False) as gateway:
        yield gateway


async def test_the_environment_value_is_the_key(referenced: RunningGateway) -> None:
    assert await _status(referenced.url, SECRET) == 200
    assert await _status(referenced.url, REFERENCE) == 401
    assert await _status(referenced.url, None) == 401


async def test_an_unresolved_reference_lets_nobody_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMPROXY_TEST_MASTER_KEY", raising=False)
    config = config_for("http://127.0.0.1:9", server={"master_key": REFERENCE})
    assert config.server.master_key_problem() is not None
    async with running_gateway(config, litellm=False) as gateway:
        assert await _status(gateway.url, REFERENCE) == 401
        assert await _status(gateway.url, "") == 401
        assert await _status(gateway.url, None) == 401


def test_problem_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMPROXY_TEST_MASTER_KEY", raising=False)
    config = parse_config(f"server:\n  master_key: {REFERENCE}\n", "c.yaml")
    problem = config.server.master_key_problem()
    assert problem is not None and "MEMPROXY_TEST_MASTER_KEY" in problem
    monkeypatch.setenv("MEMPROXY_TEST_MASTER_KEY", SECRET)
    config = parse_config(f"server:\n  master_key: {REFERENCE}\n", "c.yaml")
    assert config.server.master_key_problem() is None
    assert config.server.master_key_value == SECRET


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_up_refuses_an_unset_master_key_variable(
    memproxy_home: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.delenv("MEMPROXY_TEST_MASTER_KEY", raising=False)
    config = write_config(memproxy_home, server={"master_key": REFERENCE})
    result = memproxy(
        memproxy_home, "up", f"--host={host}", f"--port={free_port()}", f"--config={config}"
    )
    assert result.returncode == 3, result.stderr
    assert "MEMPROXY_TEST_MASTER_KEY" in result.stderr and "not set" in result.stderr
    assert "Traceback" not in result.stderr
    status = memproxy(memproxy_home, "status", "--json")
    assert status.returncode == 4 and '"running": false' in status.stdout


async def test_the_daemon_accepts_the_resolved_key(
    memproxy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMPROXY_TEST_MASTER_KEY", SECRET)
    port = free_port()
    config = write_config(memproxy_home, server={"master_key": REFERENCE})
    with running_daemon(memproxy_home, port, config) as status:
        url = f"http://127.0.0.1:{port}"
        assert status["url"] == url
        assert await _status(url, SECRET) == 200
        assert await _status(url, REFERENCE) == 401
    log = (memproxy_home / "logs").rglob("*.log")
    assert all(SECRET not in p.read_text(errors="replace") for p in log)
