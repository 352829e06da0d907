"""Bounds on what an upstream may send (DESIGN.md, "Trust model").

An upstream is not trusted to be small: a whole body is read in chunks and counted both as sent
(compressed) and as inflated; one SSE event and one whole stream have a size cap; the assistant
text kept for memory is capped. Crossing a byte limit ends the request with a 502 that names the
limit, and the upstream connection is closed, never drained.
"""

from __future__ import annotations

import aiohttp

from memproxy_cli.errors import GatewayError

# Memory stores at most a few thousand characters of a turn's answer (memory/turn_text.py);
# keeping more than this of a stream's text serves nothing and costs RAM per request.
MAX_TALLY_TEXT_CHARS = 256 * 1024

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


class UpstreamTooLarge(GatewayError):
    """An upstream response crossed one of the server.max_* limits."""

    def __init__(self, what: str, key: str, limit: int) -> None:
        super().__init__(
            502,
            f"upstream {what} exceeded server.{key} ({limit} bytes); the request was ended",
            "upstream_response_too_large",
        )
        self.key = key
        self.limit = limit


def body_too_large(limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge("response body", "max_upstream_body_bytes", limit)


def event_too_large(limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge("SSE event", "max_upstream_event_bytes", limit)


def stream_too_large(limit: int) -> UpstreamTooLarge:
    return UpstreamTooLarge("stream", "max_stream_bytes", limit)


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, at most `limit` bytes both as sent and as inflated; else close and raise.

    aiohttp inflates a compressed body in bounded steps as it is read, so counting what each
    read returns bounds the inflated size, and the stream's compressed counter bounds the rest.
    """
    declared = resp.content_length
    if declared is not None and declared > limit:
        resp.close()
        raise body_too_large(limit)
    content = resp.content
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit or content.total_raw_bytes > limit:
            resp.close()
            raise body_too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def close_stream(stream: object) -> None:
    """Hang up on an upstream stream (a LiteLLM stream wrapper) without reading the rest."""
    aclose = getattr(stream, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        return


class CappedText:
    """Text parts kept up to `limit` characters; what comes after is counted, not kept."""

    __slots__ = ("_parts", "_size", "dropped", "limit")

    def __init__(self, limit: int = MAX_TALLY_TEXT_CHARS) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.limit = limit
        self.dropped = 0

    def append(self, text: str) -> None:
        room = self.limit - self._size
        if len(text) <= room:
            self._parts.append(text)
            self._size += len(text)
            return
        if room > 0:
            self._parts.append(text[:room])
            self._size = self.limit
        self.dropped += len(text) - max(room, 0)

    def text(self) -> str:
        return "".join(self._parts)

    def __len__(self) -> int:
        return self._size
