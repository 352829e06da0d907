"""Redis check against a real redis-server: right and wrong password, none, refused, silent."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from memproxy_cli.doctor.redis_checks import check_redis
from tests.conftest import require_service
from tests.fixtures.doctor_servers import closed_port, redis_with_password, silent_server

PASSWORD = "redis-canary-pass-5150"
pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if shutil.which("redis-server") is None:
        require_service("redis-server")
    with redis_with_password(PASSWORD, tmp_path_factory.mktemp("redis")) as port:
        yield port


def test_right_password_reports_latency(redis_port: int) -> None:
    result = check_redis(f"redis://:{PASSWORD}@127.0.0.1:{redis_port}/0")
    assert result.status in ("ok", "warn")
    assert "answers PING in" in result.found and " ms" in result.found
    assert PASSWORD not in result.found


def test_wrong_password_is_named(redis_port: int) -> None:
    result = check_redis(f"redis://:not-it@127.0.0.1:{redis_port}/0")
    assert result.status == "fail"
    assert "WRONGPASS" in result.found and "password" in (result.fix or "")
    assert "not-it" not in result.found + (result.fix or "")


def test_missing_password_is_named(redis_port: int) -> None:
    result = check_redis(f"redis://127.0.0.1:{redis_port}/0")
    assert result.status == "fail"
    assert "NOAUTH" in result.found


def test_refused_connection_is_named() -> None:
    result = check_redis(f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0")
    assert result.status == "fail"
    assert "connection refused" in result.found
    assert "start Redis" in (result.fix or "")
    assert PASSWORD not in result.found


def test_hanging_server_is_told_apart_from_refused() -> None:
    with silent_server() as port:
        result = check_redis(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
    assert result.status == "fail"
    assert "accepts connections but never answers" in result.found
    assert "refused" not in result.found


def test_not_configured_is_skipped(tmp_path: Path) -> None:
    assert check_redis(None).status == "skip"
