"""Cookie jars: private files (0600), and Cloudflare clearance cookies not expired. No values."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from memproxy_cli.doctor.result import CheckResult, fail, ok, warn
from memproxy_cli.paths import Paths

CLEARANCE = frozenset({"cf_clearance", "__cf_bm"})


def check_cookies(paths: Paths, now: float | None = None) -> list[CheckResult]:
    files = sorted(paths.cookie_dir.glob("*.json")) if paths.cookie_dir.is_dir() else []
    if not files:
        return [ok("cookies", "no cookie jars yet")]
    now = time.time() if now is None else now
    results = [r for f in files for r in (jar_permissions(f), jar_clearance(f, now))]
    return [r for r in results if r is not None] or [ok("cookies", f"{len(files)} jars")]


def jar_permissions(path: Path) -> CheckResult:
    name = f"cookies {path.name}"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return fail(name, f"cannot stat {path}: {exc.strerror}", f"check {path.parent}")
    if mode & 0o077:
        return fail(
            name,
            f"{path} has mode {mode:04o}: other users can read the session cookies",
            f"chmod 600 {path}",
        )
    return ok(name, f"mode {mode:04o}")


def jar_clearance(path: Path, now: float) -> CheckResult | None:
    """Expired Cloudflare cookies by name and time; None when the jar holds none of them."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        clients = raw["clients"].values()
        records = [r for items in clients for r in items if r.get("name") in CLEARANCE]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return warn(
            f"cookies {path.name}",
            f"{path} is not a readable cookie jar",
            f"rm {path} (memproxy starts a fresh jar)",
        )
    if not records:
        return None
    expired = sorted({r["name"] for r in records if _expired(r.get("expires"), now)})
    name = f"cookies {path.name} clearance"
    if expired:
        return warn(
            name,
            f"expired: {', '.join(expired)} (for {raw.get('origin', '?')})",
            "the next request earns new ones; if the upstream keeps challenging, "
            f"rm {path} and retry",
        )
    held = ", ".join(sorted({str(r["name"]) for r in records}))
    return ok(name, f"{held} valid")


def _expired(expires: object, now: float) -> bool:
    return isinstance(expires, int | float) and float(expires) <= now
