"""`GET /v1/models` and `GET /v1/models/{id}`, in OpenAI's shape or Anthropic's.

Anthropic clients send `anthropic-version` (or an `x-api-key`): they get Anthropic's list and
error shapes; Gemini clients (`x-goog-api-key`) get Gemini's; everyone else gets OpenAI's.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.family import ApiFamily
from memproxy_cli.api.openai_chat import OPENAI_CHAT
from memproxy_cli.gateway import gemini_calls
from memproxy_cli.gateway.errors import error_response
from memproxy_cli.gateway.state import STATE, GatewayState


def _family(request: web.Request) -> ApiFamily:
    anthropic = request.headers.get("anthropic-version") or "x-api-key" in request.headers
    return ANTHROPIC_MESSAGES if anthropic else OPENAI_CHAT


def _entry(family: ApiFamily, name: str, created: int) -> dict[str, Any]:
    if family is ANTHROPIC_MESSAGES:
        return {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": "1970-01-01T00:00:00Z",
        }
    return {"id": name, "object": "model", "created": created, "owned_by": "memproxy"}


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def models(request: web.Request) -> web.Response:
    if "x-goog-api-key" in request.headers:  # google-genai 3 lists models at /v1/models
        return await gemini_calls.models(request)
    state = request.app[STATE]
    family = _family(request)
    data = [_entry(family, n, int(state.started_at)) for n in state.router.model_names()]
    if family is ANTHROPIC_MESSAGES:
        first = data[0]["id"] if data else None
        last = data[-1]["id"] if data else None
        return _json({"data": data, "has_more": False, "first_id": first, "last_id": last})
    return _json({"object": "list", "data": data})


async def model(request: web.Request) -> web.Response:
    """One model: a configured one, the echo model, or one whose provider its name tells."""
    if "x-goog-api-key" in request.headers:
        return await gemini_calls.model(request)
    state = request.app[STATE]
    family = _family(request)
    name = request.match_info["model"]
    if not _known(state, family, name):
        message = f"model {name!r} is not configured and its provider cannot be inferred"
        return error_response(family, 404, message, "model_not_found")
    return _json(_entry(family, name, int(state.started_at)))


def _known(state: GatewayState, family: ApiFamily, name: str) -> bool:
    return name in state.router.model_names() or state.router.resolve(name, family.wire) is not None
