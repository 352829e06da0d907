"""Hostile or broken inputs get a clean 4xx or a clear message: never a traceback or a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memproxy_cli.daemon.client import _UnixConnection
from memproxy_cli.gateway.validate import MAX_JSON_DEPTH
from memproxy_cli.paths import get_paths
from tests.fixtures.daemon import free_port, memproxy, running_daemon, write_config
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway
from tests.fixtures.raw_http import send_raw

MASTER = "mk-" + "robust0123456789abcdef"


def _registry(home: Path, text: str) -> None:
    (home / "state").mkdir(exist_ok=True)
    (home / "state" / "ports.json").write_text(text)


def _clean(result: Any) -> str:
    both = str(result.stdout) + str(result.stderr)
    assert "Traceback" not in both
    return both


@pytest.mark.parametrize("port", [70000, 0, -1, 2**70])
def test_registry_port_out_of_range_is_a_clear_error(memproxy_home: Path, port: int) -> None:
    _registry(
        memproxy_home,
        json.dumps({"version": 1, "projects": {"app": {"port": port, "created_at": ""}}}),
    )
    result = memproxy(memproxy_home, "ports")
    assert result.returncode == 1
    assert "not between 1 and 65535" in _clean(result)


def test_deeply_nested_registry_is_a_clear_error(memproxy_home: Path) -> None:
    _registry(memproxy_home, "[" * 100_000 + "]" * 100_000)
    result = memproxy(memproxy_home, "ports")
    assert result.returncode == 1
    assert "nested too deeply" in _clean(result)


def test_daemon_starts_despite_a_broken_registry(memproxy_home: Path) -> None:
    _registry(
        memproxy_home,
        json.dumps({"version": 1, "projects": {"app": {"port": 70000, "created_at": ""}}}),
    )
    with running_daemon(memproxy_home, free_port(), write_config(memproxy_home)) as status:
        assert status["running"] is True and status["listeners"] == []
    log = (memproxy_home / "logs" / "memproxy.log").read_text()
    assert "not between 1 and 65535" in log


@pytest.mark.parametrize("expires", ["1e300", "1e400", "NaN", "-1e400", '"soon"', "true"])
def test_a_jar_with_an_absurd_expiry_is_shown_or_skipped(memproxy_home: Path, expires: str) -> None:
    cookies = memproxy_home / "state" / "cookies"
    cookies.mkdir(parents=True)
    record = '{"name": "cf_clearance", "value": "v", "domain": "api.x.com", "expires": %s}'
    (cookies / "https_api.x.com.json").write_text(
        '{"version": 1, "origin": "https://api.x.com", "clients": {"aiohttp": [%s]}}'
        % (record % expires)
    )
    table = memproxy(memproxy_home, "sessions")
    assert table.returncode == 0 and "api.x.com" in _clean(table)
    listed = memproxy(memproxy_home, "sessions", "--json")
    assert listed.returncode == 0
    [row] = json.loads(_clean(listed) and listed.stdout)
    names = [c["name"] for c in row["cookies"]]
    assert names == (["cf_clearance"] if expires in ("1e300", "1e400") else [])
    if names:
        assert row["cookies"][0]["expires"] == "9999-12-31T23:59:59Z"


def _control(path: str, body: bytes) -> tuple[int, Any]:
    conn = _UnixConnection(str(get_paths().control_socket), 10.0)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.fixture
def daemon(memproxy_home: Path) -> Any:
    with running_daemon(memproxy_home, free_port(), write_config(memproxy_home)) as status:
        yield status


BAD_PROJECT_BODIES = [
    b"not json",
    b"[]",
    b'"app"',
    b"{}",
    b'{"project": 5}',
    b'{"project": ["app"]}',
]
BAD_PORT_BODIES = [
    b'{"project": "app", "port": "8765"}',
    b'{"project": "app", "port": true}',
    b'{"project": "app", "port": 70000}',
    b'{"project": "app", "port": 1.5}',
]


@pytest.mark.parametrize(
    ("path", "body"),
    [("/attach", b) for b in BAD_PROJECT_BODIES + BAD_PORT_BODIES]
    + [("/detach", b) for b in BAD_PROJECT_BODIES],
)
def test_control_socket_wrong_types_are_a_400(
    daemon: Any, memproxy_home: Path, path: str, body: bytes
) -> None:
    status, answer = _control(path, body)
    assert status == 400
    assert isinstance(answer["error"], str) and "Traceback" not in answer["error"]
    assert json.loads(memproxy(memproxy_home, "status", "--json").stdout)["running"]


@pytest.mark.parametrize("name", [".", "..", "-rf", "--help", ".hidden", "../x"])
def test_unsafe_project_names_are_refused(daemon: Any, memproxy_home: Path, name: str) -> None:
    status, answer = _control("/attach", json.dumps({"project": name}).encode())
    assert status == 409 and "invalid project name" in answer["error"]
    result = memproxy(memproxy_home, "attach", "--", name)
    assert result.returncode != 0
    assert "invalid project name" in _clean(result)
    assert not (memproxy_home / "state" / "ports.json").exists()


def _raw_request(port: int, path: str, body: bytes, extra: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    ).encode()
    return head + extra + b"\r\n" + body


ROUTES = [
    ("/v1/chat/completions", "gpt-4o-mini", "openai"),
    ("/v1/messages", "claude-sonnet-4-5", "anthropic"),
    ("/v1/messages/count_tokens", "claude-sonnet-4-5", "anthropic"),
]


def _shape_ok(api: str, answer: dict[str, Any]) -> None:
    if api == "openai":
        assert answer["error"]["type"] == "invalid_request_error"
    else:
        assert answer["type"] == "error"
        assert answer["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("path", "model", "api"), ROUTES)
@pytest.mark.parametrize(
    "header",
    [b"Authorization: Bearer sk-\xff\xfe\xe9t", b"x-api-key: \xc3\x28abc", b"x-api-key: caf\xe9"],
)
@pytest.mark.parametrize("master_key", [None, MASTER])
async def test_non_utf8_credentials_are_a_400(
    fake: FakeProvider, path: str, model: str, api: str, header: bytes, master_key: str | None
) -> None:
    config = config_for(fake.base, server={"master_key": master_key} if master_key else {})
    body = json.dumps(
        {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    async with running_gateway(config, litellm=False) as gw:
        port = gw.server.port
        assert port is not None
        reply = await send_raw(port, _raw_request(port, path, body, header + b"\r\n"))
    assert reply.status == 400
    _shape_ok(api, reply.json())
    assert "printable ASCII" in reply.body.decode()
    assert fake.seen == []


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("path", "model", "api"), ROUTES)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 1023, 5000])
@pytest.mark.parametrize("where", ["extra", "content"])
async def test_deeply_nested_bodies_are_a_400(
    fake: FakeProvider, path: str, model: str, api: str, depth: int, where: str
) -> None:
    config = config_for(fake.base, memory={"backend": "local"})
    if where == "extra":
        message = '{"role": "user", "content": "hi", "x": ' + _nested(depth) + "}"
    else:
        message = '{"role": "user", "content": %s}' % (
            "[" * depth + '{"type": "text", "text": "hi"}' + "]" * depth
        )
    for name in (model, "memproxy/echo"):
        body = f'{{"model": "{name}", "max_tokens": 5, "messages": [{message}]}}'.encode()
        async with running_gateway(config, litellm=False) as gw:
            port = gw.server.port
            assert port is not None
            reply = await send_raw(port, _raw_request(port, path, body, b""))
        assert reply.status == 400, reply.body[:200]
        _shape_ok(api, reply.json())
    assert fake.seen == []


async def test_a_body_nested_as_deep_as_allowed_still_works(fake: FakeProvider) -> None:
    inner = "[" * (MAX_JSON_DEPTH - 5) + "1" + "]" * (MAX_JSON_DEPTH - 5)
    body = '{"model": "memproxy/echo", "messages": [{"role": "user", "content": "hi", "x": %s}]}'
    async with running_gateway(config_for(fake.base), litellm=False) as gw:
        port = gw.server.port
        assert port is not None
        reply = await send_raw(
            port, _raw_request(port, "/v1/chat/completions", (body % inner).encode(), b"")
        )
    assert reply.status == 200
