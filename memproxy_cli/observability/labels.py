"""Bounded label values: a free-form name (a model a client made up) never grows a series set."""

from __future__ import annotations

from collections.abc import Iterable

OTHER = "other"
MAX_LABEL_CHARS = 100


class LabelCap:
    """The first `limit` distinct values keep their name; later ones become "other"."""

    def __init__(self, limit: int, preset: Iterable[str] = ()) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._preset = {v[:MAX_LABEL_CHARS] for v in preset}
        self.overflowed = 0

    def __call__(self, value: str | None) -> str:
        if not value:
            return ""
        value = value[:MAX_LABEL_CHARS]
        if value in self._seen or value in self._preset:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        self.overflowed += 1
        return OTHER

    def preset(self, values: Iterable[str]) -> None:
        """Names that always keep their label (configured models), on top of the limit."""
        self._preset = {v[:MAX_LABEL_CHARS] for v in values}
