"""A LiteLLM exception as a GatewayError: the API's own status and code, the upstream's words.

LiteLLM's messages look like `litellm.BadRequestError: AnthropicException - {"type": "error",
...}`; clients get the upstream's message only, never a class name, a traceback or a path.
"""

from __future__ import annotations

import re

import orjson

from memproxy_cli.errors import GatewayError, RowStatus
from memproxy_cli.memory.redact import CLIP_MARGIN
from memproxy_cli.upstream.headers import scrub

# Exception class name -> (HTTP status, error code in OpenAI's vocabulary).
_KINDS: dict[str, tuple[int, str]] = {
    "ContextWindowExceededError": (400, "context_length_exceeded"),
    "ContentPolicyViolationError": (400, "content_policy_violation"),
    "UnsupportedParamsError": (400, "unsupported_parameter"),
    "BadRequestError": (400, "invalid_request_error"),
    "UnprocessableEntityError": (422, "invalid_request_error"),
    "AuthenticationError": (401, "invalid_api_key"),
    "PermissionDeniedError": (403, "permission_denied"),
    "NotFoundError": (404, "model_not_found"),
    "RateLimitError": (429, "rate_limit_exceeded"),
    "Timeout": (504, "upstream_timeout"),
    "APIConnectionError": (502, "upstream_unreachable"),
    "ServiceUnavailableError": (503, "upstream_unavailable"),
    "BadGatewayError": (502, "upstream_error"),
    "InternalServerError": (502, "upstream_error"),
}
_GENERIC = frozenset({"BadRequestError", "InternalServerError"})
_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w*(?:Error|Exception)\s*[:-]\s*)+")
_CLASS_NAMES = re.compile(r"\b(?:litellm|openai|httpx|aiohttp)\.[\w.]+(?:Error|Exception)\b:?")
_PATHS = re.compile(r"(?:/[\w.\-]+){2,}\.py\b|File \"[^\"]+\"")
MAX_MESSAGE = 500


def translated_error(exc: BaseException, secrets: tuple[str | None, ...]) -> GatewayError:
    status, code = _kind(exc)
    message = _clean(upstream_message(exc), secrets)
    row_status = RowStatus.UPSTREAM_TIMEOUT if status in (408, 504) else RowStatus.ERROR
    if status == 429:
        row_status = RowStatus.RATE_LIMITED
    return GatewayError(status, f"upstream error: {message}", code, row_status=row_status)


def _kind(exc: BaseException) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        found = _KINDS.get(cls.__name__)
        if found is not None:
            status = getattr(exc, "status_code", None)
            if (  # a generic kind: keep the upstream's own status
                cls.__name__ in _GENERIC and isinstance(status, int) and 400 <= status <= 599
            ):
                return status, found[1]
            return found
    return 502, "upstream_error"


def upstream_message(exc: BaseException) -> str:
    """What the upstream said: the `message` of its JSON error when there is one."""
    text = str(getattr(exc, "message", None) or exc or "the upstream call failed")
    text = _PREFIX.sub("", text.strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            doc = orjson.loads(text[start : end + 1])
        except orjson.JSONDecodeError:
            doc = None
        inner = _message_of(doc)
        if inner:
            return inner
    return text


def _message_of(doc: object) -> str | None:
    if not isinstance(doc, dict):
        return None
    error = doc.get("error", doc)
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return None


def _clean(text: str, secrets: tuple[str | None, ...]) -> str:
    text = text[: MAX_MESSAGE + CLIP_MARGIN]  # only what can be shown is cleaned (on the loop)
    text = _CLASS_NAMES.sub("", text)
    text = _PATHS.sub("[path]", text)
    text = scrub(text.encode(), secrets).decode("utf-8", "replace")
    text = " ".join(text.split())
    return text[:MAX_MESSAGE] or "the upstream call failed"
