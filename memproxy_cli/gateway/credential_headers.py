"""Credential headers are visible ASCII or the request is refused, before anything reads them.

aiohttp hands undecodable header bytes on as surrogate escapes; a key made of them cannot be
compared with the master key nor sent upstream unchanged, so it is refused, never mangled.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from memproxy_cli.api.registry import family_for_path
from memproxy_cli.gateway.errors import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_VISIBLE_ASCII = re.compile(r"[\x20-\x7e]*")
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "proxy-authorization")


@web.middleware
async def credential_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    for name in CREDENTIAL_HEADERS:
        for value in request.headers.getall(name, ()):
            if not _VISIBLE_ASCII.fullmatch(value):
                return error_response(
                    family_for_path(request.path),
                    400,
                    f"the {name} header must be printable ASCII",
                    "invalid_credential_header",
                )
    return await handler(request)
