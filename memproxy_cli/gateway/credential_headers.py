"""Credential headers are visible ASCII or the request is refused, before anything reads them.

aiohttp hands undecodable header bytes on as surrogate escapes; a key made of them cannot be
compared with the master key nor sent upstream unchanged, so it is refused, never mangled.
The guard middleware (gateway/guard.py) runs this check before any of its own.
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "proxy-authorization")


def invalid_credential_header(headers: CIMultiDictProxy[str]) -> str | None:
    """The first credential header whose value is not visible ASCII (0x20-0x7e), or None."""
    for name in CREDENTIAL_HEADERS:
        for value in headers.getall(name, ()):
            # isascii and isprintable hold for exactly the characters 0x20-0x7e.
            if not (value.isascii() and value.isprintable()):
                return name
    return None
