"""Split a byte stream into Server-Sent Events without copying more than needed."""

from __future__ import annotations

_SEPARATORS = (b"\n\n", b"\r\n\r\n")


class SSEBuffer:
    """Feed raw chunks; get back complete events as (raw bytes incl. separator, data payload)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes | None]]:
        buf = self._buf + chunk if self._buf else chunk
        events: list[tuple[bytes, bytes | None]] = []
        start = 0
        while True:
            end, sep_len = _find_separator(buf, start)
            if end < 0:
                break
            stop = end + sep_len
            events.append((buf[start:stop], data_of(buf[start:end])))
            start = stop
        self._buf = buf[start:]
        return events

    def rest(self) -> bytes:
        """Bytes of an unterminated last event (relayed as they are at end of stream)."""
        rest, self._buf = self._buf, b""
        return rest


def _find_separator(buf: bytes, start: int) -> tuple[int, int]:
    best, best_len = -1, 0
    for sep in _SEPARATORS:
        i = buf.find(sep, start)
        if i >= 0 and (best < 0 or i < best):
            best, best_len = i, len(sep)
    return best, best_len


def data_of(event: bytes) -> bytes | None:
    """The event's data field (multi-line data joined with newlines), or None."""
    if b"data:" not in event:
        return None
    parts = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts)
