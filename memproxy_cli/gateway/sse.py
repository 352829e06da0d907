"""Split a byte stream into Server-Sent Events without copying more than needed."""

from __future__ import annotations

from memproxy_cli.upstream.bounds import DEFAULT_MAX_EVENT_BYTES, event_too_large

_RESCAN = 3  # a separator (at most 4 bytes) may start this far before a chunk's end


class SSEBuffer:
    """Feed raw chunks; get back complete events as (raw bytes incl. separator, data payload).

    Each byte is scanned for a separator about once, and an event still pending may hold at
    most `max_event_bytes` (past that, feed raises UpstreamTooLarge).
    """

    __slots__ = ("_buf", "_limit", "_scanned")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buf = bytearray()
        self._scanned = 0
        self._limit = max_event_bytes

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes | None]]:
        pending = self._buf
        if (
            not pending
            and chunk.endswith(b"\n\n")
            and chunk.find(b"\n\n") == len(chunk) - 2
            and b"\r\n\r\n" not in chunk
        ):
            return [(chunk, data_of(chunk[:-2]))]  # the usual chunk: exactly one whole event
        buf: bytes | bytearray
        if pending:
            pending += chunk
            buf, pos = pending, self._scanned
        else:
            buf, pos = chunk, 0
        events: list[tuple[bytes, bytes | None]] = []
        start = 0
        # The next "\n\n" and "\r\n\r\n" are each searched for again only once passed.
        lf, crlf = buf.find(b"\n\n", pos), buf.find(b"\r\n\r\n", pos)
        while lf >= 0 or crlf >= 0:
            if crlf < 0 or 0 <= lf < crlf:
                end, stop = lf, lf + 2
            else:
                end, stop = crlf, crlf + 4
            raw = bytes(buf[start:stop])
            events.append((raw, data_of(raw[: end - start])))
            start = stop
            if 0 <= lf < stop:
                lf = buf.find(b"\n\n", stop)
            if 0 <= crlf < stop:
                crlf = buf.find(b"\r\n\r\n", stop)
        left = len(buf) - start
        if left:
            if left > self._limit:
                raise event_too_large(self._limit)
            if buf is pending:
                del pending[:start]
            else:
                pending[:] = buf[start:]
            self._scanned = max(left - _RESCAN, 0)
        elif pending:
            pending.clear()
        return events

    def feed_run(self, chunk: bytes) -> bytes:
        """The complete events of what was pending and `chunk` as one run of bytes: exactly
        the raw parts `feed` would return, joined (`SSEBuffer().feed(run)` gives them back),
        found without cutting them apart. What follows them stays pending, as with `feed`."""
        pending = self._buf
        buf: bytes | bytearray
        if pending:
            pending += chunk
            buf, pos = pending, self._scanned
        else:
            buf, pos = chunk, 0
        if b"\r" not in buf and b"\n\n\n" not in buf:
            # Only "\n\n" separators, none overlapping: the last one ends the last event.
            start = buf.rfind(b"\n\n") + 2 if b"\n\n" in buf else 0
        else:  # the scan `feed` makes, without the events
            start = 0
            lf, crlf = buf.find(b"\n\n", pos), buf.find(b"\r\n\r\n", pos)
            while lf >= 0 or crlf >= 0:
                stop = lf + 2 if crlf < 0 or 0 <= lf < crlf else crlf + 4
                start = stop
                if 0 <= lf < stop:
                    lf = buf.find(b"\n\n", stop)
                if 0 <= crlf < stop:
                    crlf = buf.find(b"\r\n\r\n", stop)
        run = buf[:start] if buf is chunk else bytes(buf[:start])
        left = len(buf) - start
        if left:
            if left > self._limit:
                raise event_too_large(self._limit)
            if buf is pending:
                del pending[:start]
            else:
                pending[:] = buf[start:]
            self._scanned = max(left - _RESCAN, 0)
        elif pending:
            pending.clear()
        return bytes(run)

    def rest(self) -> bytes:
        """Bytes of an unterminated last event (relayed as they are at end of stream)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest


def data_of(event: bytes) -> bytes | None:
    """The event's data field (multi-line data joined with newlines), or None."""
    if event.startswith(b"data: ") and b"\n" not in event and b"\r" not in event:
        return event[6:]  # one line: what the loop below finds, without splitting
    if b"data:" not in event:
        return None
    parts = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts)
