"""The newest matches of a search expression with their BM25 scores, kept between recalls.

Recall ranks the newest few hundred matches of the question's rarest terms. For a very common
term that is the same few hundred rows, scored again on every recall, while only the turns
stored since are new. A window keeps each match's BM25 score, scope and creation time; a later
recall with the same expression scores only the rows added since (`checked_to`) and drops the
oldest matches beyond the budget.

A window is rebuilt from scratch when it is older than `ttl_s` (BM25 depends on store-wide
statistics that drift as rows are added), once a quarter of its matches were appended since it
was built, when the budget changed, or when any memory was deleted or changed since (the store
counts those; see `memories_version` in local.py).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from memproxy_cli.memory.fts_bm25 import Calibration

MAX_WINDOWS = 64
WINDOW_TTL_S = 30.0


# One matching memory, as the queries return it: (bm25, -rowid, scope, created_at). bm25() is
# lower for better matches, so matches sort best first, and among equal scores the newer first.
# A plain tuple: no copy of each row, and the garbage collector stops tracking it.
Match = tuple[float, int, str, float]
BM25: Final = 0
ORDER: Final = 1
SCOPE: Final = 2
CREATED_AT: Final = 3


def rowid(match: Match) -> int:
    return -match[ORDER]


@dataclass(frozen=True, slots=True)
class Window:
    matches: tuple[Match, ...]  # oldest first, at most `budget`
    ranked: tuple[Match, ...]  # the same matches, best first
    checked_to: int  # every row up to this rowid was looked at (rows only ever get larger ones)
    budget: int
    changes: int  # the store's count of deleted or changed memories when built
    built_at: float  # time.monotonic() of the full query
    calibration: Calibration | None = None  # scores new matches without bm25() (fts_bm25.py)
    appended: int = 0  # matches added since the full query

    def best(self, scope: str, n: int) -> list[Match]:
        """The `n` best matches within `scope`, best first."""
        return list(islice((m for m in self.ranked if m[SCOPE] == scope), n))

    def extended(self, new: Sequence[Match], checked_to: int) -> Window:
        """This window with `new` appended: the matches (ascending) among the rows above
        `checked_to` and up to the new `checked_to`."""
        checked_to = max(checked_to, self.checked_to)
        if not new:
            return self if checked_to == self.checked_to else replace(self, checked_to=checked_to)
        matches = (*self.matches, *new)[-self.budget :]
        gone = len(self.matches) + len(new) - len(matches)  # the oldest, beyond the budget
        ranked = list(self.ranked)
        for old in self.matches[:gone]:
            del ranked[bisect_left(ranked, old)]
        for match in new[max(0, gone - len(self.matches)) :]:
            insort(ranked, match)
        return Window(
            matches,
            tuple(ranked),
            max(checked_to, rowid(new[-1])),
            self.budget,
            self.changes,
            self.built_at,
            self.calibration,
            self.appended + len(new),
        )

    @property
    def worn(self) -> bool:
        """A quarter of the matches were scored after the full query: time to rebuild."""
        return self.appended * 4 >= self.budget

    def usable(self, budget: int, changes: int, now: float, ttl_s: float) -> bool:
        return (
            self.budget == budget
            and self.changes == changes
            and now - self.built_at < ttl_s
            and not self.worn
        )


def new_window(
    matches: Sequence[Match],
    budget: int,
    changes: int,
    checked_to: int,
    calibration: Calibration | None = None,
) -> Window:
    """A window from a full query's matches (ascending rowids) over the rows up to
    `checked_to`."""
    kept = tuple(matches[-budget:])
    checked_to = max(checked_to, rowid(kept[-1]) if kept else 0)
    return Window(
        kept, tuple(sorted(kept)), checked_to, budget, changes, time.monotonic(), calibration
    )


class WindowCache:
    """Windows by search expression, least recently used dropped first; safe across threads."""

    def __init__(self, max_windows: int = MAX_WINDOWS, ttl_s: float = WINDOW_TTL_S) -> None:
        self._windows: OrderedDict[str, Window] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_windows
        self.ttl_s = ttl_s

    def get(self, expression: str, budget: int, changes: int) -> Window | None:
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(expression)
            if window is None:
                return None
            if not window.usable(budget, changes, now, self.ttl_s):
                del self._windows[expression]
                return None
            self._windows.move_to_end(expression)
            return window

    def put(self, expression: str, window: Window) -> None:
        with self._lock:
            self._windows[expression] = window
            self._windows.move_to_end(expression)
            while len(self._windows) > self._max:
                self._windows.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()

    def __len__(self) -> int:
        return len(self._windows)
