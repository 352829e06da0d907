"""Structured JSON log lines for the daemon, with secrets redacted on every handler."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from memproxy_cli.memory.redact import may_hold_secret, redact
from memproxy_cli.paths import open_private

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Credentials that must never reach a log line, whatever logged them.
_SECRET = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{8,}|sm_[A-Za-z0-9_\-]{8,}|AKIA[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_\-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-~+/=]{8,})"
)


# Exact values of the configured secrets (provider keys, master key), whatever their format.
_KNOWN: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Redact these exact values from every log line from now on."""
    _KNOWN.update(v for v in values if v and len(v) >= 8)


def config_secrets(raw: Any) -> list[str]:
    """Resolved values of every `*key*`/`*token*`/`*secret*` field of a dumped config."""
    from memproxy_cli.config import resolve_secret

    found: list[str] = []
    if isinstance(raw, dict):
        for name, value in raw.items():
            lowered = str(name).lower()
            secretish = any(w in lowered for w in ("key", "token", "secret", "password"))
            if secretish and isinstance(value, str):
                found.append(resolve_secret(value) or "")
            else:
                found += config_secrets(value)
    elif isinstance(raw, list):
        for item in raw:
            found += config_secrets(item)
    return [v for v in found if v]


def redact_text(text: str) -> str:
    for secret in _KNOWN:
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    if not may_hold_secret(text):  # the common case: nothing that could be a secret
        return text
    return redact(_SECRET.sub("[REDACTED]", text))


class RedactingFilter(logging.Filter):
    """Scrubs the message and its arguments before any handler sees it (the JSON formatter
    then scrubs the whole line, extra fields included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = None
        return True


FLUSH_INTERVAL_S = 0.5
"""How long an INFO line may sit in the file's buffer; warnings and errors go out at once."""


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """Rotates on the bytes written so far, counted here: the stock check formats every record
    a second time and stats the file, and asking the text stream for its position (`tell`)
    flushes it and costs ~0.1 ms a line.

    Flushes a WARNING or worse at once, INFO lines at most every FLUSH_INTERVAL_S (one write
    per batch of lines instead of one per request); `flush_logs()` pushes out the rest.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._flushed_at = 0.0
        self._size = 0  # bytes in the current file, set again each time it is opened
        super().__init__(*args, **kwargs)

    def _open(self) -> Any:
        fd = open_private(self.baseFilename, os.O_WRONLY | os.O_APPEND)
        stream = os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)
        stream.seek(0, 2)  # append mode: the position is the size
        self._size = stream.tell()
        return stream

    def shouldRollover(self, record: logging.LogRecord) -> int:
        if self.stream is None:
            self.stream = self._open()
        return int(self.maxBytes > 0 and self._size >= self.maxBytes)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record), record)
        except Exception:
            self.handleError(record)

    def _write(self, text: str, record: logging.LogRecord | None) -> None:
        """Append one formatted line (`record` None: an INFO line from `log_fields`)."""
        if self.shouldRollover(record):  # type: ignore[arg-type]  # it never reads the record
            self.doRollover()
        stream = self.stream or self._open()
        self.stream = stream
        line = text + self.terminator
        stream.write(line)
        self._size += len(line) if line.isascii() else len(line.encode("utf-8", "replace"))
        now = time.monotonic()
        urgent = record is not None and record.levelno >= logging.WARNING
        if urgent or now - self._flushed_at >= FLUSH_INTERVAL_S:
            self._flushed_at = now
            stream.flush()

    def write_line(self, text: str) -> None:
        """Append an INFO line formatted (and scrubbed) by the caller, under the handler's lock."""
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            try:
                self._write(text, None)
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": "log line dropped"}))


# The daemon's own file handler while it is the only handler on the root logger (set by
# setup_logging): then `log_fields` may write a line without building a LogRecord.
_FILE: _RotatingFile | None = None
_SCALARS = (int, float, bool, type(None))


def log_fields(
    logger: logging.Logger, msg: str, fields: dict[str, str | int | float | None]
) -> None:
    """`logger.info(msg, extra=fields)` for flat, scalar fields, at a fraction of the cost.

    While the daemon's file handler is the only one in the way, the line is built here: the
    same JSON line the formatter writes, with one secret check of the strings it holds (a
    configured secret or a fragment of a secret pattern sends the whole line through
    `redact_text`, as the formatter does). Any other set-up (another handler, a filter, a
    handler on the way up, a non-scalar field) takes the ordinary logging path.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _FILE
    root = logging.root
    if handler is None or root.handlers != [handler] or not _plain_path(logger):
        logger.info(msg, extra=fields)
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)
    strings = [msg]
    for value in fields.values():
        if isinstance(value, str):
            strings.append(value)
        elif not isinstance(value, _SCALARS):
            logger.info(msg, extra=fields)
            return
    entry: dict[str, object] = {
        "ts": formatter._timestamp(time.time()),
        "level": "info",
        "logger": logger.name,
        "msg": msg,
    }
    entry.update(fields)
    line = _dumps(entry)
    probe = "\n".join(strings)
    if may_hold_secret(probe) or any(secret in probe for secret in _KNOWN):
        line = redact_text(line)
    handler.write_line(line)


def _plain_path(logger: logging.Logger) -> bool:
    """No filter or handler between `logger` and the root, and the root's handler is ours."""
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.filters or node.handlers or not node.propagate:
            return False
        node = node.parent
    handler = _FILE
    return (
        handler is not None
        and not logging.root.filters
        and handler.level <= logging.INFO
        and len(handler.filters) == 1
        and isinstance(handler.filters[0], RedactingFilter)
    )


def flush_logs() -> None:
    """Write out every line the root handlers still hold in their buffers."""
    for handler in logging.getLogger().handlers:
        handler.flush()


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._stamp = (-1, "")  # (epoch second, its text): one tuple, so threads see a pair

    def _timestamp(self, created: float) -> str:
        second = int(created)
        cached, text = self._stamp
        if second != cached:  # strftime once per second, not once per line
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._stamp = (second, text)
        return f"{text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # The whole line, so secrets inside non-string extras (dicts, lists) are caught too.
        return redact_text(_dumps(entry))


def _dumps(entry: dict[str, object]) -> str:
    try:
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # e.g. an integer wider than 64 bits
        return json.dumps(entry, default=str)


def setup_logging(log_file: Path, level: str = "INFO", to_stderr: bool = False) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # The JSON lines carry none of the caller's file, line, thread or process: do not compute
    # them for every record (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _FILE
    handler = _RotatingFile(log_file, maxBytes=20 * 1024 * 1024, backupCount=3, encoding="utf-8")
    handlers: list[logging.Handler] = [handler]
    if to_stderr:
        handlers.append(logging.StreamHandler())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for h in handlers:
        h.setFormatter(JsonFormatter())
        h.addFilter(RedactingFilter())
        root.addHandler(h)
    _FILE = handler
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    logging.captureWarnings(True)
