"""The JSONL spill file: rows that could not be stored yet, replayed when the store is back."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from memproxy_cli.store.rows import RequestRow

_FIELDS = frozenset(f.name for f in fields(RequestRow))


def row_from_dict(data: dict[str, Any]) -> RequestRow:
    return RequestRow(**{k: v for k, v in data.items() if k in _FIELDS})


class SpillFile:
    """Append rows as JSON lines; hand them back in chunks for replay. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replay_path = path.with_name(path.name + ".replay")
        self._lock = threading.Lock()

    def append(self, rows: list[RequestRow]) -> None:
        """Raises OSError when the file cannot be written (the caller counts the drop)."""
        data = "".join(json.dumps(r.to_dict(), default=str) + "\n" for r in rows)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data.encode())
            finally:
                os.close(fd)

    def claim(self) -> Path | None:
        """The file to replay: a replay left unfinished, else the spill file moved aside."""
        with self._lock:
            if self.replay_path.exists():
                return self.replay_path
            if self.path.exists():
                os.replace(self.path, self.replay_path)
                return self.replay_path
        return None

    def has_pending(self) -> bool:
        return self.replay_path.exists() or self.path.exists()

    def finish(self, claimed: Path) -> None:
        claimed.unlink(missing_ok=True)


def read_chunks(path: Path, size: int) -> Iterator[list[RequestRow]]:
    """Rows of a spill file in chunks; lines that do not parse are skipped."""
    chunk: list[RequestRow] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                chunk.append(row_from_dict(json.loads(line)))
            except (ValueError, TypeError):
                continue
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def count_pending(path: Path) -> int:
    """Lines waiting in the spill file and an unfinished replay (for doctor)."""
    total = 0
    for p in (path, path.with_name(path.name + ".replay")):
        try:
            with p.open("rb") as fh:
                total += sum(1 for _ in fh)
        except FileNotFoundError:
            continue
    return total
