"""Error responses in the caller's API shape (the family renders the body)."""

from __future__ import annotations

import orjson
from aiohttp import web

from memproxy_cli.api.family import ApiFamily


def error_response(
    family: ApiFamily,
    status: int,
    message: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(family.error_body(status, message, code)),
        content_type="application/json",
        headers=headers,
    )
