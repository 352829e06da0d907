"""`log_fields` writes the request line the logging path would, and scrubs it the same way."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from memproxy_cli.daemon import logs
from memproxy_cli.daemon.logs import flush_logs, log_fields, register_secrets, setup_logging

FIELDS: dict[str, str | int | float | None] = {
    "request_id": "req_01a2343b29f7cd7c6fa7b79b",
    "project": "bench",
    "model": "gpt-4o-mini",
    "status": "ok",
    "http_status": 200,
    "latency_ms": 1.234,
    "overhead_ms": None,
    "client": "aiohttp",
}


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[Path]:
    """The daemon's logging set-up, alone on the root logger (as in the daemon)."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    log_file = tmp_path / "d.log"
    setup_logging(log_file)
    try:
        yield log_file
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        logs._FILE = None
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Only the daemon's handler on the root logger (pytest adds its own around each test)."""
    root = logging.getLogger()
    others = [h for h in root.handlers if h is not logs._FILE]
    for handler in others:
        root.removeHandler(handler)
    yield
    for handler in others:
        root.addHandler(handler)


def _lines(log_file: Path) -> list[dict[str, object]]:
    flush_logs()
    return [json.loads(line) for line in log_file.read_text().splitlines()]


def test_the_line_is_the_one_logging_writes(
    daemon_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logging.getLogger("memproxy.test-fields")

    def no_record(*args: object, **kwargs: object) -> None:
        raise AssertionError("the daemon's own set-up needs no LogRecord")

    with alone():
        log.info("request", extra=FIELDS)
        monkeypatch.setattr(log, "info", no_record)
        log_fields(log, "request", FIELDS)
    plain, fast = _lines(daemon_log)
    assert plain.pop("ts") and fast.pop("ts")
    assert list(plain) == list(fast) and plain == fast
    assert fast["logger"] == "memproxy.test-fields" and fast["level"] == "info"


def test_secrets_in_any_field_are_redacted(daemon_log: Path) -> None:
    register_secrets(["configured-secret-4242"])
    log = logging.getLogger("memproxy.test-fields")
    pattern_key = "sk-proj-" + "a1B2c3D4" * 4
    with alone():
        log_fields(log, "request", {**FIELDS, "project": pattern_key})
        log_fields(log, "request", {**FIELDS, "client": "x configured-secret-4242 y"})
        log_fields(log, "request", {**FIELDS, "model": "Bearer abcdefgh12345678"})
    text = daemon_log.read_text() + "\n".join(json.dumps(x) for x in _lines(daemon_log))
    assert pattern_key not in text and "configured-secret-4242" not in text
    assert "abcdefgh12345678" not in text
    assert [line["status"] for line in _lines(daemon_log)] == ["ok"] * 3


def test_another_handler_gets_the_record(daemon_log: Path) -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    extra = Keep()
    with alone():
        logging.getLogger().addHandler(extra)
        try:
            log_fields(logging.getLogger("memproxy.test-fields"), "request", FIELDS)
        finally:
            logging.getLogger().removeHandler(extra)
    assert [r.getMessage() for r in seen] == ["request"]
    assert getattr(seen[0], "project", None) == "bench"
    assert _lines(daemon_log)[0]["project"] == "bench"


def test_a_non_scalar_field_goes_through_the_formatter(daemon_log: Path) -> None:
    pattern_key = "sk-ant-" + "z9Y8x7W6" * 4
    nested: dict[str, object] = {**FIELDS, "extra": {"k": pattern_key}}
    with alone():
        log_fields(logging.getLogger("memproxy.test-fields"), "request", nested)  # type: ignore[arg-type]
    (line,) = _lines(daemon_log)
    assert pattern_key not in json.dumps(line) and "REDACTED" in json.dumps(line["extra"])


def test_below_info_nothing_is_written(daemon_log: Path) -> None:
    log = logging.getLogger("memproxy.test-fields-quiet")
    log.setLevel(logging.WARNING)
    with alone():
        log_fields(log, "request", FIELDS)
    assert _lines(daemon_log) == []
