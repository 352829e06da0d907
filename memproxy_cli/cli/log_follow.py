"""`memproxy logs --follow`: every row of the request log that appears, once.

Rows are read by id. On SQLite ids commit in order, so the rows after the last one printed are
the new ones. On PostgreSQL a row's id is taken when it is inserted and it becomes visible when
its transaction commits: with several gateways writing (or one slow commit) a row can appear
below ids already printed. There the ids of the newest `late_ids` rows are read again on each
poll (ids only, no rows) and a row is printed the first time its id shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memproxy_cli.store.queries import SpendQueries

Row = dict[str, Any]


class Follow:
    def __init__(self, queries: SpendQueries, filters: dict[str, Any]) -> None:
        """Read where the log ends now, before the first rows are read: a row stored after
        this is either among them or printed by `poll`."""
        self._queries = queries
        self._filters = filters
        self._window = queries.late_ids
        self._top = queries.last_id()  # every id up to here is printed or was there at start
        self._seen: set[int] = set()  # ids within the window, printed or there at start
        if self._window:
            start = max(0, self._top - self._window)
            ids = queries.ids_after(start, **filters)
            self._seen.update(i for i in ids if i <= self._top)

    def first(self, n: int) -> list[Row]:
        """The last `n` rows that match, oldest first."""
        rows = self._queries.recent_rows(n, **self._filters)
        self._printed(rows)
        return rows

    def poll(self) -> list[Row]:
        """The rows that appeared since the last call, by id."""
        if not self._window:
            after = self._queries.rows_after(self._top, **self._filters)
            self._printed(after)
            return after
        ids = self._queries.ids_after(max(0, self._top - self._window), **self._filters)
        unseen = [i for i in ids if i not in self._seen]
        rows: list[Row] = []
        for late in (i for i in unseen if i <= self._top):  # rare: a commit that came late
            found = self._queries.rows_after(late - 1, n=1, **self._filters)
            rows += [r for r in found if int(r["id"]) == late]
        if unseen and unseen[-1] > self._top:
            newer = self._queries.rows_after(self._top, **self._filters)
            rows += [r for r in newer if int(r["id"]) not in self._seen]
        rows = sorted({int(r["id"]): r for r in rows}.values(), key=lambda r: int(r["id"]))
        self._printed(rows)
        return rows

    def _printed(self, rows: list[Row]) -> None:
        if not rows:
            return
        self._top = max(self._top, max(int(r["id"]) for r in rows))
        if self._window:
            self._seen.update(int(r["id"]) for r in rows)
            floor = self._top - self._window
            self._seen = {i for i in self._seen if i > floor}
