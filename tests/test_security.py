"""Who may talk to the gateway: Host check (DNS rebinding), master key, no SQL by formatting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

import memproxy_cli
from tests.fixtures.daemon import free_port, memproxy
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway

ECHO = {"model": "memproxy/echo", "messages": [{"role": "user", "content": "hi"}]}
MASTER = "mk-test-master-key-000111"


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with running_gateway(config_for("http://127.0.0.1:9"), litellm=False) as gateway:
        yield gateway


@pytest.fixture
async def keyed() -> AsyncIterator[RunningGateway]:
    config = config_for("http://127.0.0.1:9", server={"master_key": MASTER})
    async with running_gateway(config, litellm=False) as gateway:
        yield gateway


async def _post(
    gw: RunningGateway, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.url + path, json=ECHO, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io"])
async def test_foreign_host_is_refused(gw: RunningGateway, host: str) -> None:
    status, body = await _post(
        gw, "/v1/chat/completions", {"Host": host.format(port=gw.server.port)}
    )
    assert status == 403
    assert "not allowed" in str(body)


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
async def test_loopback_hosts_pass(gw: RunningGateway, host: str) -> None:
    status, _ = await _post(gw, "/v1/chat/completions", {"Host": host.format(port=gw.server.port)})
    assert status == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "mk-test-master-key-00011"}],
)
async def test_missing_or_wrong_master_key_is_401(
    keyed: RunningGateway, headers: dict[str, str]
) -> None:
    status, body = await _post(keyed, "/v1/chat/completions", headers)
    assert status == 401
    assert body["error"]["type"] == "authentication_error"  # type: ignore[index]
    status, body = await _post(keyed, "/v1/messages", headers)
    assert status == 401
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"  # type: ignore[index]


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {MASTER}"}, {"x-api-key": MASTER}])
async def test_right_master_key_passes(keyed: RunningGateway, headers: dict[str, str]) -> None:
    assert (await _post(keyed, "/v1/chat/completions", headers))[0] == 200
    assert (await _post(keyed, "/v1/messages", headers))[0] == 200


async def test_health_needs_no_key(keyed: RunningGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(keyed.url + "/health") as resp:
            assert resp.status == 200


def test_public_bind_without_master_key_is_refused(memproxy_home: Path) -> None:
    result = memproxy(memproxy_home, "up", "--host", "0.0.0.0", f"--port={free_port()}")
    assert result.returncode == 3
    assert "master_key" in result.stderr and "0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (memproxy_home / "state").exists() or not list(
        (memproxy_home / "state").glob("*.pid")
    )


_SQL_WORDS = r"(SELECT|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER)\b"
_FORMATTED_SQL = [
    re.compile(r"\bf(\"\"\"|'''|\"|')[^\n]*?" + _SQL_WORDS + r"[^\n]*?\{", re.IGNORECASE),
    re.compile(r"(\"|')[^\n]*" + _SQL_WORDS + r"[^\n]*%[sd(][^\n]*\1\s*%\s*[\w(]", re.I),
    re.compile(r"(\"|')[^\"'\n]*" + _SQL_WORDS + r"[^\"'\n]*\{\}[^\"'\n]*\1\.format", re.I),
]


def formatted_sql(text: str) -> list[str]:
    """Lines that build SQL with an f-string, % or .format()."""
    found = []
    for line in text.splitlines():
        if any(p.search(line) for p in _FORMATTED_SQL) and not _is_prose(line):
            found.append(line.strip())
    return found


def _is_prose(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("#")


def test_the_grep_catches_formatted_sql() -> None:
    assert formatted_sql('cur.execute(f"SELECT * FROM t WHERE id = {rid}")')
    assert formatted_sql("sql = \"DELETE FROM t WHERE k = '%s'\" % key")
    assert formatted_sql('q = "UPDATE t SET a = {}".format(v)')
    assert not formatted_sql('cur.execute("SELECT * FROM t WHERE id = ?", (rid,))')
    assert not formatted_sql('log.info(f"selected {n} rows")')


def test_no_sql_built_by_string_formatting() -> None:
    package = Path(memproxy_cli.__file__).parent
    offenders = {
        f"{path.relative_to(package)}: {line}"
        for path in package.rglob("*.py")
        for line in formatted_sql(path.read_text(encoding="utf-8"))
    }
    assert not offenders, "build SQL with bound parameters instead:\n" + "\n".join(
        sorted(offenders)
    )
