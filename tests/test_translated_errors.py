"""LiteLLM exceptions become the client's API errors without class names, paths or keys."""

from __future__ import annotations

from memproxy_cli.upstream.translated_errors import translated_error


class RateLimitError(Exception):
    status_code = 429


class ContextWindowExceededError(Exception):
    status_code = 400


def test_nested_class_names_paths_and_keys_are_removed() -> None:
    exc = ContextWindowExceededError(
        "litellm.BadRequestError: ContextWindowExceededError: AnthropicException - "
        '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long '
        'for key sk-ant-secret-123456789"}} File "/usr/lib/python3/site-packages/litellm/main.py"'
    )
    err = translated_error(exc, ("sk-ant-secret-123456789",))
    assert err.status == 400 and err.code == "context_length_exceeded"
    assert err.message == "upstream error: prompt is too long for key [REDACTED]"


def test_unknown_exceptions_are_a_502_without_their_name() -> None:
    err = translated_error(KeyError("x"), ())
    assert err.status == 502 and err.code == "upstream_error"
    assert "KeyError" not in err.message
    limited = translated_error(RateLimitError("litellm.RateLimitError: slow down"), ())
    assert (limited.status, limited.code, limited.row_status) == (
        429,
        "rate_limit_exceeded",
        "rate_limited",
    )
    assert limited.message == "upstream error: slow down"
