"""The memories stored since a recent point, copied into a small in-memory text index.

Topping up a kept match window (match_window.py) means finding the matches among the few turns
stored since the window was last used. Asking the store's own index means probing each of its
segments (FTS5 writes one per transaction and merges them lazily: 10 to 30 at 100k memories),
and after every write a reader reads those pages again: that was most of a recall. Each reader
thread therefore copies the rows added since a recent point into an in-memory FTS5 table with
the store's tokenizer. A calibrated window (fts_bm25.py) is topped up from that small index,
whose highlight() and docsize give the same term counts and lengths as the store's; the final
fetch of a recall takes the text of recent memories from the copy too. The copy starts over,
empty and from the newest row, after `MAX_ROWS` rows or when any memory was deleted or changed.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from memproxy_cli.memory.fts_bm25 import Calibration, term_count, varint
from memproxy_cli.memory.local_schema import RECENT_FTS_TABLE
from memproxy_cli.memory.match_window import Match

MAX_ROWS = 1000
Row = tuple[Any, ...]  # id, scope, text, created_at, metadata (as in memories)

_LAST_SQL = "SELECT coalesce(max(rowid), 0) FROM memories"
_NEW_ROWS_SQL = """
SELECT rowid, id, scope, text, created_at, metadata FROM memories
WHERE rowid > ? ORDER BY rowid LIMIT ?
"""
_MATCHES_SQL = """
SELECT recent.rowid, highlight(recent, 0, char(29), ''), recent.text, d.sz
FROM recent JOIN recent_docsize AS d ON d.id = recent.rowid
WHERE recent MATCH ? AND recent.rowid > ? ORDER BY recent.rowid
"""


class RecentRows:
    """One reader thread's copy; `refresh` inside the recall's read transaction of the store."""

    def __init__(self) -> None:
        self._index = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._index.execute(RECENT_FTS_TABLE)
        self.rows: dict[int, Row] = {}
        self.base = -1  # every row above it is copied (-1: nothing yet)
        self.last = 0  # the newest row of the store at the last refresh
        self._changes = -1

    def refresh(self, conn: sqlite3.Connection, changes: int) -> None:
        """Copy the rows added since the last refresh; start over when the store's count of
        deleted or changed memories moved, or the copy would grow beyond `MAX_ROWS`."""
        if changes != self._changes or self.base < 0:
            self._restart(conn, changes)
            return
        room = MAX_ROWS - len(self.rows)
        new = conn.execute(_NEW_ROWS_SQL, (self.last, room + 1)).fetchall()
        if len(new) > room:
            self._restart(conn, changes)
        elif new:
            self._index.execute("BEGIN")
            self._index.executemany(
                "INSERT INTO recent (rowid, text) VALUES (?, ?)", [(r[0], r[3]) for r in new]
            )
            self._index.execute("COMMIT")
            self.rows.update((r[0], r[1:]) for r in new)
            self.last = new[-1][0]

    def _restart(self, conn: sqlite3.Connection, changes: int) -> None:
        self._index.execute("DROP TABLE recent")
        self._index.execute(RECENT_FTS_TABLE)
        self.rows.clear()
        self.base = self.last = int(conn.execute(_LAST_SQL).fetchone()[0])
        self._changes = changes

    def covers(self, after: int) -> bool:
        """Whether every row above `after` is in the copy."""
        return 0 <= self.base <= after

    def matches(self, expression: str, after: int, calibration: Calibration) -> list[Match] | None:
        """The matches above rowid `after`, scored with `calibration`; None if one cannot be."""
        found = []
        for rowid, highlighted, text, size in self._index.execute(
            _MATCHES_SQL, (expression, after)
        ):
            tf = term_count(highlighted, text)
            if tf <= 0 or not size:
                return None
            _, scope, _, created_at, _ = self.rows[rowid]
            found.append((calibration.score(tf, varint(size)[0]), -rowid, scope, created_at))
        return found

    def close(self) -> None:
        self._index.close()
