"""The hosted backend: Supermemory through its official SDK, the project (scope) as namespace.

Each turn is one document whose id we choose, so `forget` deletes exactly what `add` stored.
A turn keyed for duplicates (`Turn.dedup_key`) gets an id derived from that key: when the scope
already holds it, a metadata-only update (`PATCH /ns/{ns}/document/{id}`, no reprocessing)
refreshes its recency instead of adding it again (adding with a known id would add its content
to that document once more, per the v5 API).
The SDK speaks httpx; one `httpx.AsyncClient` (connection pool + cookie jar) serves the backend for
its whole life, so cookies an edge in front of the API sets (Cloudflare) are sent back.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memproxy_cli.memory.backend import Memory, Turn
from memproxy_cli.memory.redact import redact
from memproxy_cli.memory.turn_text import format_turn
from memproxy_cli.names import is_namespace

if TYPE_CHECKING:
    import httpx
    from supermemory import AsyncSupermemory

PAGE_SIZE = 100
MAX_RETRIES = 1
ID_PREFIX = "mp-"
_HEX = re.compile(r"[0-9a-f]{8,64}")  # turn_text.dedup_key, so an id is a safe path segment


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _latest(system: Any) -> float:
    """When a document was last stored: created, or refreshed by a repeat of its turn."""
    created = _timestamp(getattr(system, "created_at", None))
    return max(created, _timestamp(getattr(system, "updated_at", None)))


def _stored_text(turn: Turn) -> str:
    return redact(format_turn(turn.user, turn.assistant, note=turn.note))


def namespace(scope: str) -> str:
    """The scope as a URL path segment; the SDK inserts it unencoded, so only safe names pass."""
    if not is_namespace(scope):
        raise ValueError(f"memory scope {scope[:80]!r} is not a valid Supermemory namespace")
    return scope


class SupermemoryBackend:
    name = "supermemory"

    def __init__(
        self,
        api_key: str | None,
        base_url: str = "https://api.supermemory.ai",
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._http = http_client
        self._owns_http = http_client is None
        self._sdk: AsyncSupermemory | None = None

    def _client(self) -> AsyncSupermemory:
        """The SDK client, built on first use (a missing key fails the call, not the daemon)."""
        if self._sdk is None:
            if not self._api_key:
                raise RuntimeError("no Supermemory API key (memory.supermemory.api_key)")
            import httpx
            from supermemory import AsyncSupermemory

            if self._http is None:
                timeout = httpx.Timeout(30.0, connect=5.0)
                self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=True)
            self._sdk = AsyncSupermemory(
                api_key=self._api_key,
                base_url=self._base_url,
                httpx_client=self._http,
                max_retries=MAX_RETRIES,
            )
        return self._sdk

    async def search(self, scope: str, query: str, k: int) -> list[Memory]:
        if not query.strip() or k <= 0:
            return []
        response = await self._client().search(namespace(scope), query=query, limit=k)
        return [self._from_result(scope, r) for r in response.results[:k]]

    @staticmethod
    def _from_result(scope: str, result: Any) -> Memory:
        return Memory(
            id=result.id,
            scope=scope,
            text=result.memory or result.chunk or "",
            created_at=_latest(result.system),
            score=float(result.similarity or 0.0),
            metadata=dict(result.metadata or {}),
        )

    async def add(self, scope: str, turn: Turn) -> str | None:
        metadata: dict[str, Any] = {"source": "memproxy"}
        if turn.model:
            metadata["model"] = turn.model
        if turn.request_id:
            metadata["request_id"] = turn.request_id
        if turn.client:
            metadata["client"] = turn.client
        scope = namespace(scope)
        if turn.dedup_key and _HEX.fullmatch(turn.dedup_key):
            doc_id = ID_PREFIX + turn.dedup_key
            if await self._refresh(scope, doc_id, metadata):
                return doc_id
        else:
            doc_id = secrets.token_hex(8)
        content = await asyncio.to_thread(_stored_text, turn)
        ref = await self._client().add(scope, content=content, id=doc_id, metadata=metadata)
        return str(ref.id)

    async def _refresh(self, scope: str, doc_id: str, metadata: dict[str, Any]) -> bool:
        """Touch the document of an identical turn stored before; False when there is none."""
        from supermemory.errors import NotFoundError

        try:
            await self._client().documents.update(scope, doc_id, metadata=metadata)
        except NotFoundError:
            return False
        return True

    async def _page(self, scope: str, page: int, limit: int) -> tuple[list[Memory], int]:
        response = await self._client().list(
            namespace(scope),
            "documents",
            page=page,
            limit=limit,
            sort="createdAt",
            order="desc",
            include={"content": True},
        )
        found = [
            Memory(
                id=doc.id,
                scope=scope,
                text=doc.content or doc.summary or doc.title or "",
                created_at=_latest(doc.system),
                metadata=dict(doc.metadata or {}),
            )
            for doc in response.documents
        ]
        return found, int(response.pagination.total_pages)

    async def list(self, scope: str, limit: int = 100, offset: int = 0) -> list[Memory]:
        """Newest first; the API pages, so `offset` is rounded down to a page of `limit`."""
        found, _ = await self._page(scope, offset // max(limit, 1) + 1, limit)
        return found

    async def forget(self, scope: str, memory_id: str) -> bool:
        result = await self._client().documents.delete(namespace(scope), ids=[memory_id])
        return int(result.count) > 0

    async def export(self, scope: str) -> Sequence[Memory]:
        everything: list[Memory] = []
        page, pages = 1, 1
        while page <= pages:
            found, pages = await self._page(scope, page, PAGE_SIZE)
            everything.extend(found)
            page += 1
        everything.reverse()  # oldest first, like the local export
        return everything

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
        self._http = None if self._owns_http else self._http
        self._sdk = None
