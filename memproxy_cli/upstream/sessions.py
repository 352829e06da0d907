"""One persistent client (connection pool + cookie jar) per upstream origin.

Passthrough, the LiteLLM adapter (aiohttp) and the Supermemory SDK (httpx) borrow clients from one
`SessionManager`, so each upstream sees a single long-lived, well-mannered client. Jars are saved
as JSON (mode 0600) on close and shortly after a response sets cookies, and reloaded on start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from memproxy_cli import __version__
from memproxy_cli.upstream.cookies import (
    CookieFile,
    CookieRecord,
    cookie_file_for,
    read_cookie_file,
    write_private_json,
)
from memproxy_cli.upstream.session_state import OriginStats, read_stats, write_snapshot

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

AIOHTTP = "aiohttp"
HTTPX = "httpx"


def default_user_agent() -> str:
    return f"memproxy/{__version__}"


@lru_cache(maxsize=256)
def origin_of(url: str) -> str:
    return str(URL(url).origin())


@dataclass
class _Origin:
    """The live clients of one origin and the jars read from its file."""

    origin: str
    stored: dict[str, list[CookieRecord]] = field(default_factory=dict)
    jar: TrackingJar | None = None
    session: aiohttp.ClientSession | None = None
    httpx_cookies: httpx.Cookies | None = None
    httpx_client: httpx.AsyncClient | None = None

    def records(self) -> dict[str, list[CookieRecord]]:
        """Current cookies per client kind: live jars first, stored ones for unused kinds."""
        current = dict(self.stored)
        if self.jar is not None:
            current[AIOHTTP] = aiohttp_records(self.jar)
        if self.httpx_cookies is not None:
            current[HTTPX] = httpx_records(self.httpx_cookies)
        return current


def aiohttp_records(jar: aiohttp.CookieJar) -> list[CookieRecord]:
    """The unexpired cookies of an aiohttp jar, with their absolute deadlines."""
    host_only = jar.host_only_cookies
    # aiohttp has no public accessor for the absolute deadline a Max-Age cookie got on arrival.
    deadlines: dict[tuple[str, str, str], float] = getattr(jar, "_expirations", {})
    records = []
    for (domain, jar_path), cookies in jar.cookies.items():
        for name, morsel in cookies.items():
            key = (domain, jar_path, name)
            records.append(
                CookieRecord(
                    name=name,
                    value=morsel.coded_value,
                    domain=domain,
                    path=morsel["path"] or "/",
                    expires=deadlines.get(key),
                    secure=bool(morsel["secure"]),
                    httponly=bool(morsel["httponly"]),
                    host_only=key in host_only,
                )
            )
    return [r for r in records if not r.expired()]


def httpx_records(cookies: httpx.Cookies) -> list[CookieRecord]:
    """The unexpired cookies of an httpx jar."""
    records = [
        CookieRecord(
            name=c.name,
            value=c.value or "",
            domain=c.domain.lstrip("."),
            path=c.path or "/",
            expires=None if c.expires is None else float(c.expires),
            secure=c.secure,
            httponly=c.has_nonstandard_attr("HttpOnly") or c.has_nonstandard_attr("httponly"),
            host_only=not c.domain_specified,
        )
        for c in cookies.jar
    ]
    return [r for r in records if not r.expired()]


def _restorable(origin: str, records: list[CookieRecord]) -> list[str]:
    """Set-Cookie lines for the unexpired cookies that belong to the origin's host.

    A redirect may have left another host's cookies in the jar; replaying a host-only one
    against this origin would hand it to the wrong host, so those are dropped.
    """
    host = URL(origin).host or ""
    lines = []
    for r in records:
        if r.expired():
            continue
        if r.host_only and r.domain not in (host, f"{host}.local"):
            continue
        if not r.host_only and not (host == r.domain or host.endswith("." + r.domain)):
            continue
        lines.append(r.set_cookie_header())
    return lines


class TrackingJar(aiohttp.CookieJar):
    """A cookie jar that calls `on_change` after a response offered it cookies.

    Cheaper than a per-session TraceConfig, which costs every request its trace calls.
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        # unsafe=True accepts cookies from IP hosts: each jar only ever talks to its one origin.
        super().__init__(unsafe=True)
        self.on_change = on_change

    def update_cookies_from_headers(self, headers: Sequence[str], response_url: URL) -> None:
        super().update_cookies_from_headers(headers, response_url)
        if headers and self.on_change is not None:
            self.on_change()


def restore_aiohttp_jar(origin: str, records: list[CookieRecord]) -> TrackingJar:
    jar = TrackingJar()
    headers = _restorable(origin, records)
    if headers:
        jar.update_cookies_from_headers(headers, URL(origin))
    return jar


def restore_httpx_cookies(origin: str, records: list[CookieRecord]) -> httpx.Cookies:
    import httpx

    cookies = httpx.Cookies()
    headers = [("set-cookie", line) for line in _restorable(origin, records)]
    if headers:
        request = httpx.Request("GET", URL(origin).with_path("/").human_repr())
        cookies.extract_cookies(httpx.Response(200, headers=headers, request=request))
    return cookies


class SessionManager:
    """Owns the client sessions; passthrough, LiteLLM and Supermemory all borrow from it."""

    def __init__(
        self,
        cookie_dir: Path,
        user_agent: str | None = None,
        connect_timeout_s: float = 5.0,
        limit_per_host: int = 256,
        *,
        stats_file: Path | None = None,
        save_delay_s: float = 1.0,
    ) -> None:
        self._cookie_dir = cookie_dir
        self._user_agent = user_agent or default_user_agent()
        self._connect_timeout_s = connect_timeout_s
        self._limit_per_host = limit_per_host
        self._stats_file = stats_file or cookie_dir.parent / "sessions.json"
        self._save_delay_s = save_delay_s
        self._origins: dict[str, _Origin] = {}
        self._stats: dict[str, OriginStats] = read_stats(self._stats_file)
        self._dirty_jars: set[str] = set()
        self._stats_dirty = False
        self._save_handle: asyncio.TimerHandle | None = None
        self._save_tasks: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()

    @property
    def user_agent(self) -> str:
        return self._user_agent

    def _origin(self, url: str) -> _Origin:
        origin = origin_of(url)
        state = self._origins.get(origin)
        if state is None:
            stored = read_cookie_file(cookie_file_for(self._cookie_dir, origin), origin)
            state = _Origin(origin, stored.clients if stored else {})
            self._origins[origin] = state
        return state

    def session_for(self, url: str) -> aiohttp.ClientSession:
        state = self._origin(url)
        if state.session is None or state.session.closed:
            if state.jar is None:
                jar = restore_aiohttp_jar(state.origin, state.stored.get(AIOHTTP, []))
                origin = state.origin
                jar.on_change = lambda: self._jar_changed(origin)
                state.jar = jar
            state.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=self._limit_per_host),
                cookie_jar=state.jar,
                headers={"User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
            )
        return state.session

    def cookie_values(self, url: str) -> tuple[str, ...]:
        """Values of the cookies this origin's clients hold: secrets to scrub from its errors."""
        state = self._origins.get(origin_of(url))
        if state is None:
            return ()
        values = {r.value for records in state.records().values() for r in records}
        if state.jar is not None:  # the decoded form too, for a quoted wire value
            values.update(m.value for c in state.jar.cookies.values() for m in c.values())
        return tuple(sorted(v for v in values if v))

    def httpx_client_for(self, url: str) -> httpx.AsyncClient:
        """A persistent httpx client for SDKs built on httpx; it records its own responses."""
        import httpx

        state = self._origin(url)
        if state.httpx_client is None or state.httpx_client.is_closed:
            cookies = state.httpx_cookies
            if cookies is None:
                cookies = restore_httpx_cookies(state.origin, state.stored.get(HTTPX, []))
            state.httpx_client = httpx.AsyncClient(
                cookies=cookies,
                headers={"User-Agent": self._user_agent},
                timeout=httpx.Timeout(600.0, connect=self._connect_timeout_s),
                limits=httpx.Limits(max_connections=self._limit_per_host),
                event_hooks={"response": [self._on_httpx_response]},
            )
            # httpx copies the cookies it is given; its own jar is the live one.
            state.httpx_cookies = state.httpx_client.cookies
        return state.httpx_client

    async def _on_httpx_response(self, response: httpx.Response) -> None:
        from memproxy_cli.upstream.cloudflare import classify

        verdict = classify(response.status_code, response.headers, None).verdict
        self.record(str(response.url), response.status_code, response.headers, verdict)

    def record(self, url: str, status: int, headers: Mapping[str, str], verdict: str) -> None:
        """Count one upstream response and remember its status and Cloudflare verdict."""
        stats = self._stats_for(url)
        stats.requests += 1
        stats.last_status = status
        stats.last_verdict = str(verdict)
        stats.last_seen = time.time()
        if headers.get("set-cookie") is not None or headers.get("Set-Cookie") is not None:
            self._dirty_jars.add(stats.origin)
        self._stats_changed()

    def snapshot(self) -> list[dict[str, Any]]:
        """Per origin: cookie names and expiry (never values), requests, last status and verdict."""
        now = time.time()
        origins = sorted(set(self._stats) | set(self._origins))
        return [self._entry(o, now) for o in origins]

    def _entry(self, origin: str, now: float) -> dict[str, Any]:
        state = self._origins.get(origin)
        if state is not None:
            names = CookieFile(origin, state.records()).names(now)
        else:
            stored = read_cookie_file(cookie_file_for(self._cookie_dir, origin), origin)
            names = stored.names(now) if stored else []
        return self._stats.get(origin, OriginStats(origin)).entry(names)

    def _stats_for(self, url: str) -> OriginStats:
        origin = origin_of(url)
        stats = self._stats.get(origin)
        if stats is None:
            stats = self._stats[origin] = OriginStats(origin)
        return stats

    def _jar_changed(self, origin: str) -> None:
        self._dirty_jars.add(origin)
        self._schedule_save()

    def _stats_changed(self) -> None:
        self._stats_dirty = True
        self._schedule_save()

    def _schedule_save(self) -> None:
        if self._save_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._save_handle = loop.call_later(self._save_delay_s, self._start_save)

    def _start_save(self) -> None:
        self._save_handle = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._save_tasks.add(task)
        task.add_done_callback(self._save_tasks.discard)

    def _take_writes(self) -> list[tuple[Path, Any]]:
        """Serialize what changed (cheap, on the loop); the file writes happen in a thread."""
        writes: list[tuple[Path, Any]] = []
        for origin in sorted(self._dirty_jars):
            state = self._origins.get(origin)
            if state is not None:
                data = CookieFile(origin, state.records()).to_json()
                writes.append((cookie_file_for(self._cookie_dir, origin), data))
        self._dirty_jars.clear()
        if self._stats_dirty:
            self._stats_dirty = False
            writes.append((self._stats_file, None))
        return writes

    async def flush(self) -> None:
        """Write changed jars and the stats snapshot now."""
        async with self._write_lock:
            writes = self._take_writes()
            if not writes:
                return
            snapshot = self.snapshot()
            try:
                await asyncio.to_thread(self._write_all, writes, snapshot)
            except OSError as exc:
                log.warning("could not save upstream session state: %s", exc.strerror or exc)

    def _write_all(self, writes: list[tuple[Path, Any]], snapshot: list[dict[str, Any]]) -> None:
        for path, data in writes:
            if path == self._stats_file:
                write_snapshot(path, snapshot)
            else:
                write_private_json(path, data)

    async def close(self) -> None:
        """Save every jar and the stats, then close all clients."""
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._save_tasks:
            await asyncio.gather(*self._save_tasks, return_exceptions=True)
        self._dirty_jars.update(
            o for o, s in self._origins.items() if s.jar is not None or s.httpx_cookies is not None
        )
        self._stats_dirty = self._stats_dirty or bool(self._stats)
        await self.flush()
        for state in self._origins.values():
            if state.session is not None:
                await state.session.close()
            if state.httpx_client is not None:
                await state.httpx_client.aclose()
        self._origins.clear()
