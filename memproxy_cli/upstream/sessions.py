"""One persistent aiohttp session (connection pool + cookie jar) per upstream origin."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from yarl import URL


def origin_of(url: str) -> str:
    u = URL(url)
    return str(u.origin())


class SessionManager:
    """Owns the client sessions; passthrough, LiteLLM and Supermemory all borrow from it."""

    def __init__(
        self,
        cookie_dir: Path,
        user_agent: str,
        connect_timeout_s: float = 5.0,
        limit_per_host: int = 256,
    ) -> None:
        self._cookie_dir = cookie_dir
        self._user_agent = user_agent
        self._connect_timeout_s = connect_timeout_s
        self._limit_per_host = limit_per_host
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session_for(self, url: str) -> aiohttp.ClientSession:
        origin = origin_of(url)
        session = self._sessions.get(origin)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=self._limit_per_host),
                cookie_jar=aiohttp.CookieJar(),
                headers={"User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s),
            )
            self._sessions[origin] = session
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
