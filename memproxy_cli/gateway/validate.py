"""Ingress checks: body size, JSON, the fields each API requires, and fields nobody may send."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from memproxy_cli.gateway.errors import Api, GatewayError

# Fields that would let a request choose where it is sent or with which credentials.
FORBIDDEN_FIELDS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "custom_llm_provider",
        "extra_headers",
        "headers",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_region_name",
        "vertex_credentials",
        "vertex_project",
        "azure_ad_token",
        "organization",
        "litellm_params",
        "metadata_url",
    }
)


async def read_body(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise GatewayError(413, f"request body of {length} bytes exceeds the {limit}-byte limit")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise GatewayError(413, f"request body exceeds the {limit}-byte limit") from None


def parse_json(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise GatewayError(400, "request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "request body must be a JSON object")
    _check_depth(raw, body)
    return body


# orjson reads 1,024 levels but writes 254: a body between the two would parse, then fail
# wherever the gateway serializes it again (memories injected, echo, LiteLLM).
MAX_JSON_DEPTH = 254


def _check_depth(raw: bytes, body: dict[str, Any]) -> None:
    """A 400 for a body nested deeper than the gateway can write back; the serializer is the
    (C-speed) depth probe, and only bodies with that many brackets at all are probed."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    try:
        orjson.dumps(body)
    except TypeError:
        raise GatewayError(
            400, f"request body is nested deeper than {MAX_JSON_DEPTH} levels", "nested_too_deep"
        ) from None


def check_request(api: Api, body: dict[str, Any]) -> None:
    bad = FORBIDDEN_FIELDS.intersection(body)
    if bad:
        names = ", ".join(sorted(bad))
        raise GatewayError(
            400,
            f"field(s) {names} may not be set by a request; configure upstreams in model_list",
            "forbidden_field",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise GatewayError(400, "`model` is required and must be a string", "missing_model")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise GatewayError(400, "`messages` is required and must be an array", "invalid_messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise GatewayError(400, f"messages[{i}] must be an object with a string `role`")
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise GatewayError(400, "`stream` must be a boolean")
    if api == "anthropic":
        _check_anthropic(body)
    else:
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise GatewayError(400, "`stream_options` must be an object")


def _check_anthropic(body: dict[str, Any]) -> None:
    max_tokens = body.get("max_tokens")
    if "max_tokens" in body and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise GatewayError(400, "`max_tokens` must be an integer")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise GatewayError(400, "`system` must be a string or an array of content blocks")
