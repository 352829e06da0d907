"""Why turns were not stored, per scope: counters the daemon keeps in a small JSON file.

The store itself says what was stored (per client, size, repeats, chrome removed); what was left
out is only known to the daemon, so it counts it here and writes the file now and then (and at
shutdown), never on the request path. `memproxy memory stats` reads it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

# Why a turn was not stored.
SKIP_REASONS = (
    "subagent",  # a conversation another one started (its prompt is the model's)
    "background",  # client housekeeping: probes, titles, summaries
    "error",  # the loop ended in an error
    "client_disconnect",  # the client hung up
    "no_answer",  # the loop ended with no answer text
    "echo",  # the echo model's answers
    "abandoned",  # a loop that never ended (its record aged out)
    "store_off",  # memory.store is false
)
FILE_NAME = "capture-stats.json"


class CaptureStats:
    def __init__(self) -> None:
        self.skipped: dict[str, Counter[str]] = {}
        self.dirty = False

    def skip(self, scope: str, reason: str) -> None:
        self.skipped.setdefault(scope, Counter())[reason] += 1
        self.dirty = True

    def take(self) -> dict[str, dict[str, int]]:
        """The counts since the last take."""
        taken = {scope: dict(counts) for scope, counts in self.skipped.items()}
        self.skipped.clear()
        self.dirty = False
        return taken


def read_counts(path: Path) -> dict[str, dict[str, int]]:
    """The counters in the file; an absent or unreadable file counts nothing."""
    try:
        raw: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    scopes = raw.get("skipped") if isinstance(raw, dict) else None
    if not isinstance(scopes, dict):
        return {}
    return {
        str(scope): {str(k): v for k, v in counts.items() if isinstance(v, int)}
        for scope, counts in scopes.items()
        if isinstance(counts, dict)
    }


def add_counts(path: Path, new: dict[str, dict[str, int]]) -> None:
    """Add `new` to the counters in the file, written whole through a private temporary file."""
    merged = read_counts(path)
    for scope, counts in new.items():
        into = merged.setdefault(scope, {})
        for reason, n in counts.items():
            into[reason] = into.get(reason, 0) + n
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"version": 1, "skipped": merged}, out)
    os.replace(tmp, path)
