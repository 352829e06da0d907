"""Ingress checks: body size, JSON, the fields each API requires, and fields nobody may send."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from memproxy_cli.api.family import ApiFamily
from memproxy_cli.errors import GatewayError

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


def check_request(family: ApiFamily, body: dict[str, Any]) -> None:
    """Refuse fields that name where a request goes; then the family's own schema check.

    This is an early, clear error: what keeps a request from choosing a URL or a key is that
    transports build their calls from config and from each family's allowlist of fields.
    """
    bad = FORBIDDEN_FIELDS.intersection(body)
    if bad:
        names = ", ".join(sorted(bad))
        raise GatewayError(
            400,
            f"field(s) {names} may not be set by a request; configure upstreams in model_list",
            "forbidden_field",
        )
    family.validate(body)
