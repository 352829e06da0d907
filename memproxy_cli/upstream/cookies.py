"""Cookie jar files: one private JSON file per upstream origin; never pickle, never values shown.

Stdlib only, so the CLI can read names and expiry without importing aiohttp.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
_LATEST_HTTP_DATE = 253402300799.0  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class CookieRecord:
    """One stored cookie; `value` is the wire form exactly as the upstream sent it."""

    name: str
    value: str
    domain: str
    path: str = "/"
    expires: float | None = None
    secure: bool = False
    httponly: bool = False
    host_only: bool = True

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and self.expires <= (time.time() if now is None else now)

    def set_cookie_header(self) -> str:
        """A Set-Cookie line that makes any RFC 6265 jar store this cookie again."""
        parts = [f"{self.name}={self.value}", f"Path={self.path or '/'}"]
        if not self.host_only:
            parts.append(f"Domain={self.domain}")
        if self.expires is not None:
            parts.append(f"Expires={formatdate(min(self.expires, _LATEST_HTTP_DATE), usegmt=True)}")
        if self.secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        return "; ".join(parts)

    @classmethod
    def from_json(cls, raw: Any) -> CookieRecord | None:
        """The record of a jar file entry; None unless every field has its type."""
        if not isinstance(raw, dict):
            return None
        name, value, domain = raw.get("name"), raw.get("value"), raw.get("domain")
        path = raw.get("path") or "/"
        secure, httponly = raw.get("secure", False), raw.get("httponly", False)
        host_only = raw.get("host_only", True)
        expires = raw.get("expires")
        if not (
            isinstance(name, str)
            and isinstance(value, str)
            and isinstance(domain, str)
            and isinstance(path, str)
            and isinstance(secure, bool)
            and isinstance(httponly, bool)
            and isinstance(host_only, bool)
            and (expires is None or _is_time(expires))
        ):
            return None
        if expires is not None:  # 1e300 and the like: as late as an HTTP date can say
            expires = min(max(float(expires), 0.0), _LATEST_HTTP_DATE)
        return cls(name, value, domain, path, expires, secure, httponly, host_only)


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def origin_slug(origin: str) -> str:
    """A file-name-safe, stable name for an origin such as `https://api.openai.com`."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", origin).strip("_") or "origin"


def cookie_file_for(cookie_dir: Path, origin: str) -> Path:
    return cookie_dir / f"{origin_slug(origin)}.json"


def read_private_text(path: Path) -> str:
    """A file of ours, never read through a symlink (OSError if it is one)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, encoding="utf-8") as f:
        return f.read()


def write_private_json(path: Path, data: Any) -> None:
    """Write JSON readable only by the owner: a 0600 temp file, then an atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class CookieFile:
    """The jars of one origin, one list per client kind (`aiohttp`, `httpx`)."""

    origin: str
    clients: dict[str, list[CookieRecord]]

    def names(self, now: float | None = None) -> list[dict[str, Any]]:
        """Cookie names and expiry, never values; one entry per distinct cookie."""
        seen: dict[tuple[str, str, str], float | None] = {}
        for records in self.clients.values():
            for r in records:
                if not r.expired(now):
                    seen.setdefault((r.name, r.domain, r.path), r.expires)
        return [{"name": k[0], "expires": exp} for k, exp in sorted(seen.items())]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "origin": self.origin,
            "clients": {k: [asdict(r) for r in v] for k, v in self.clients.items()},
        }


def read_cookie_file(path: Path, origin: str | None = None) -> CookieFile | None:
    """The unexpired cookies in a jar file; None when it is missing or unreadable."""
    try:
        raw = json.loads(read_private_text(path))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
        return None
    stored_origin = raw.get("origin")
    if not isinstance(stored_origin, str) or (origin is not None and stored_origin != origin):
        return None
    clients: dict[str, list[CookieRecord]] = {}
    now = time.time()
    raw_clients = raw.get("clients")
    for kind, items in (raw_clients if isinstance(raw_clients, dict) else {}).items():
        records = [CookieRecord.from_json(i) for i in (items if isinstance(items, list) else [])]
        clients[str(kind)] = [r for r in records if r is not None and not r.expired(now)]
    return CookieFile(stored_origin, clients)


def read_cookie_dir(cookie_dir: Path) -> list[CookieFile]:
    """Every readable jar file in the cookie directory."""
    if not cookie_dir.is_dir():
        return []
    files = (read_cookie_file(p) for p in sorted(cookie_dir.glob("*.json")))
    return [f for f in files if f is not None]
