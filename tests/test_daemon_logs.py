"""The daemon's log file: JSON lines, rotation by size, INFO buffered briefly, warnings at once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from memproxy_cli.daemon.logs import JsonFormatter, _RotatingFile, flush_logs


@pytest.fixture
def logger(tmp_path: Path) -> Iterator[tuple[logging.Logger, _RotatingFile]]:
    handler = _RotatingFile(tmp_path / "d.log", maxBytes=4000, backupCount=2, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger(f"test-daemon-logs-{tmp_path.name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log, handler
    log.removeHandler(handler)
    handler.close()


def test_info_waits_in_the_buffer_a_warning_goes_out_at_once(
    logger: tuple[logging.Logger, _RotatingFile], tmp_path: Path
) -> None:
    log, handler = logger
    log.info("first")  # the first line of a fresh handler is flushed (no flush yet)
    log.info("held", extra={"request_id": "req_1"})
    assert "held" not in (tmp_path / "d.log").read_text()
    log.warning("loud")
    lines = [json.loads(x) for x in (tmp_path / "d.log").read_text().splitlines()]
    assert [x["msg"] for x in lines] == ["first", "held", "loud"]
    assert lines[1]["request_id"] == "req_1" and lines[2]["level"] == "warning"
    log.info("tail")
    handler.flush()
    assert (tmp_path / "d.log").read_text().splitlines()[-1].endswith('"msg":"tail"}')


def test_flush_logs_pushes_out_the_root_handlers(tmp_path: Path) -> None:
    root = logging.getLogger()
    handler = _RotatingFile(tmp_path / "r.log", encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        logging.getLogger("t").info("one")
        logging.getLogger("t").info("two")
        flush_logs()
        assert [json.loads(x)["msg"] for x in (tmp_path / "r.log").read_text().splitlines()] == [
            "one",
            "two",
        ]
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        handler.close()


def test_rotates_by_bytes_written_counting_what_the_file_held(tmp_path: Path) -> None:
    path = tmp_path / "d.log"
    path.write_text("x" * 3900 + "\n", encoding="utf-8")  # left by an earlier run
    handler = _RotatingFile(path, maxBytes=4000, backupCount=2, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test-daemon-logs-rotate")
    log.propagate = False
    log.addHandler(handler)
    try:
        for i in range(60):
            log.warning("line %d é", i)  # non-ASCII: counted in bytes, not characters
    finally:
        log.removeHandler(handler)
        handler.close()
    backups = sorted(p.name for p in tmp_path.glob("d.log*"))
    assert backups == ["d.log", "d.log.1", "d.log.2"]
    for name in backups:
        assert (tmp_path / name).stat().st_size <= 4000 + 200  # one line past the limit at most
    assert "line 59" in path.read_text(encoding="utf-8")
