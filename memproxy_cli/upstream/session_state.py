"""Per-origin session statistics and the `sessions.json` snapshot the CLI reads without the daemon.

Stdlib only: `memproxy sessions` imports this, never aiohttp.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memproxy_cli.upstream.cookies import read_cookie_dir, write_private_json

STATE_VERSION = 1


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def from_iso(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class OriginStats:
    """What one upstream origin has seen from us and answered."""

    origin: str
    requests: int = 0
    last_status: int | None = None
    last_verdict: str | None = None
    last_seen: float | None = None

    def entry(self, cookies: list[dict[str, Any]]) -> dict[str, Any]:
        """The snapshot row: cookie names and expiry only, never values.

        Cooldowns live in the running daemon only (`deployments.with_cooldowns` adds them):
        a stopped daemon has none, so the snapshot says none.
        """
        return {
            "origin": self.origin,
            "cookies": [{"name": c["name"], "expires": iso(c["expires"])} for c in cookies],
            "requests": self.requests,
            "last_status": self.last_status,
            "last_verdict": self.last_verdict,
            "last_seen": iso(self.last_seen),
            "backed_off_until": None,
            "cooldowns": [],
        }

    @classmethod
    def from_entry(cls, raw: dict[str, Any]) -> OriginStats | None:
        origin = raw.get("origin")
        if not isinstance(origin, str):
            return None
        requests = raw.get("requests")
        status = raw.get("last_status")
        verdict = raw.get("last_verdict")
        return cls(
            origin=origin,
            requests=requests if isinstance(requests, int) else 0,
            last_status=status if isinstance(status, int) else None,
            last_verdict=verdict if isinstance(verdict, str) else None,
            last_seen=from_iso(raw.get("last_seen")),
        )


def write_snapshot(path: Path, entries: list[dict[str, Any]]) -> None:
    write_private_json(path, {"version": STATE_VERSION, "sessions": entries})


def read_snapshot(path: Path) -> list[dict[str, Any]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
        return []
    entries = raw.get("sessions")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def read_stats(path: Path) -> dict[str, OriginStats]:
    stats = (OriginStats.from_entry(e) for e in read_snapshot(path))
    return {s.origin: s for s in stats if s is not None}


def sessions_view(state_file: Path, cookie_dir: Path) -> list[dict[str, Any]]:
    """Every known upstream: stats from the snapshot, cookie names and expiry from the jar files."""
    now = time.time()
    stats = read_stats(state_file)
    jars = {jar.origin: jar for jar in read_cookie_dir(cookie_dir)}
    origins = sorted(set(stats) | set(jars))
    return [
        stats.get(o, OriginStats(o)).entry(jars[o].names(now) if o in jars else []) for o in origins
    ]
