"""The OpenAI Responses API: `POST /v1/responses`, and the stored responses under it.

Relayed as it is to OpenAI-compatible upstreams (every stream event byte for byte), translated
through LiteLLM's Responses bridge for the other providers. Stored responses (`GET`/`DELETE
/v1/responses/{id}`, its input items) name no model: they go to the default OpenAI upstream.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from memproxy_cli.api.family import (
    KEEP,
    TERMINAL,
    ApiFamily,
    Body,
    Endpoint,
    EventVerdict,
    Translated,
    Translation,
    Wire,
    framed,
)
from memproxy_cli.api.openai_chat import OPENAI_ERROR_TYPES, openai_error_body
from memproxy_cli.api.responses_events import response_events, response_shell
from memproxy_cli.api.responses_items import responses_messages
from memproxy_cli.api.tally import Tally, as_int
from memproxy_cli.errors import GatewayError
from memproxy_cli.memory.conversation import Conversation, content_texts
from memproxy_cli.upstream.bounds import CappedText

if TYPE_CHECKING:
    from memproxy_cli.config import InjectionStrategy

# The only Responses fields a request may hand to `litellm.aresponses`. Everything else is
# dropped: LiteLLM reads many keyword arguments as configuration (`metadata` and
# `litellm_metadata` feed its callbacks, `prompt` its prompt management, `extra_body`,
# `extra_headers`, `timeout`, `api_base`, fallbacks, mock responses, ...).
RESPONSES_FIELDS = frozenset(
    {
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "text",
        "truncation",
        "store",
        "include",
        "user",
    }
)

_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_CONTEXT_ERROR = re.compile(r"context (?:length|window)|too many tokens|prompt is too long", re.I)
# `response.failed` carries an error code: Codex ends the turn at once on
# `context_length_exceeded` and retries the others; the openai SDK hands the code on.
_FAILURE_CODES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    413: "context_length_exceeded",
    429: "rate_limit_exceeded",
    504: "timeout",
}


def responses_request(body: Body) -> Body:
    """The allowlisted fields of a request, as they go to LiteLLM."""
    return {k: v for k, v in body.items() if k in RESPONSES_FIELDS and v is not None}


def responses_usage(tally: Tally, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    tally.prompt_tokens = as_int(usage.get("input_tokens"), tally.prompt_tokens)
    tally.completion_tokens = as_int(usage.get("output_tokens"), tally.completion_tokens)
    details = usage.get("input_tokens_details")
    if isinstance(details, dict):
        tally.cache_read_tokens = as_int(details.get("cached_tokens"), tally.cache_read_tokens)
        # LiteLLM's translated answers also say what was written to the provider's cache.
        tally.cache_write_tokens = as_int(
            details.get("cache_write_tokens"), tally.cache_write_tokens
        )


def output_texts(output: Any) -> list[str]:
    """The `output_text` of every assistant message item of a response's `output`."""
    if not isinstance(output, list):
        return []
    texts = []
    for item in output:
        if isinstance(item, dict) and item.get("type") == "message":
            text = "".join(content_texts(item.get("content"), frozenset({"output_text"})))
            if text:
                texts.append(text)
    return texts


def _read_response(tally: Tally, response: Any) -> None:
    """Usage, and the final text, of a whole response object (the final text replaces what
    the deltas said; a failed response leaves no text to remember)."""
    if not isinstance(response, dict):
        return
    responses_usage(tally, response.get("usage"))
    if response.get("status") == "failed":
        _failed(tally, response.get("error"))
        return
    output = response.get("output")
    if isinstance(output, list) and any(_is_client_call(item) for item in output):
        tally.ended_with_tool_call = True
    texts = output_texts(output)
    if texts:
        final = tally.text_parts = CappedText(tally.text_parts.limit)
        final.append("\n\n".join(texts))


# Output items the client runs before it calls again (hosted tools such as web search are run
# by the upstream within the same response).
_CLIENT_CALLS = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
        "computer_call",
    }
)


def _is_client_call(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") in _CLIENT_CALLS


def _failed(tally: Tally, error: Any) -> None:
    """A response that failed: nothing to remember, and the row says why."""
    tally.text_parts = CappedText(tally.text_parts.limit)
    message = error.get("message") if isinstance(error, dict) else None
    tally.failure = message if isinstance(message, str) and message else "the response failed"


# -- where memories go -------------------------------------------------------------------------


def _last_user_item(items: list[Any]) -> dict[str, Any] | None:
    return next(
        (
            item
            for item in reversed(items)
            if isinstance(item, dict)
            and item.get("type", "message") == "message"
            and item.get("role") == "user"
        ),
        None,
    )


def _add_part(item: dict[str, Any], text: str, prefix: bool) -> None:
    content = item.get("content")
    if isinstance(content, str):
        content = [{"type": "input_text", "text": content}]
    elif not isinstance(content, list):
        content = []
    part = {"type": "input_text", "text": text}
    item["content"] = [part, *content] if prefix else [*content, part]


class OpenAIResponses(ApiFamily):
    name: ClassVar[str] = "openai.responses"
    wire: ClassVar[Wire] = "openai"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("POST", "/v1/responses"),
        Endpoint("POST", "/responses"),
        Endpoint("GET", "/v1/responses/{response_id}", "relay"),
        Endpoint("DELETE", "/v1/responses/{response_id}", "relay"),
        Endpoint("GET", "/v1/responses/{response_id}/input_items", "relay"),
        Endpoint("POST", "/v1/responses/{response_id}/cancel", "relay"),
        Endpoint("GET", "/responses/{response_id}", "relay"),
        Endpoint("DELETE", "/responses/{response_id}", "relay"),
        Endpoint("GET", "/responses/{response_id}/input_items", "relay"),
        Endpoint("POST", "/responses/{response_id}/cancel", "relay"),
    )
    path_prefixes: ClassVar[tuple[str, ...]] = ("/v1/responses", "/responses")
    error_types: ClassVar[Mapping[int, str]] = OPENAI_ERROR_TYPES

    # -- ingress -------------------------------------------------------------------------------

    def validate(self, body: Body) -> None:
        given = body.get("input")
        if given is not None and not isinstance(given, str | list):
            raise GatewayError(400, "`input` must be a string or an array of input items")
        if isinstance(given, list):
            for i, item in enumerate(given):
                if not isinstance(item, dict):
                    raise GatewayError(400, f"input[{i}] must be an object")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise GatewayError(400, "`instructions` must be a string")
        tools = body.get("tools")
        if tools is not None and not isinstance(tools, list):
            raise GatewayError(400, "`tools` must be an array")

    def upstream_path(self, model: str, stream: bool) -> str:
        return "/responses"

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, status: int, message: str, code: str | None = None) -> Body:
        return openai_error_body(status, message, code)

    def sse_error_event(self, status: int, message: str) -> bytes:
        """A `response.failed` event: what the openai SDK yields and Codex reports (by code).

        The relay does not say how many events went out before the failure, so the event
        carries sequence number 0."""
        code = "context_length_exceeded" if _CONTEXT_ERROR.search(message) else None
        code = code or _FAILURE_CODES.get(status, "server_error")
        response = response_shell("resp_failed", "", "failed")
        response["error"] = {"code": code, "message": message}
        event = {"type": "response.failed", "sequence_number": 0, "response": response}
        return framed(event, "response.failed")

    # -- responses -----------------------------------------------------------------------------

    def tally_response(self, tally: Tally, body: Any) -> None:
        _read_response(tally, body)

    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        kind = event.get("type") if isinstance(event, dict) else None
        if not isinstance(kind, str):
            return KEEP
        if kind == "response.output_text.delta":
            delta = event.get("delta")
            if isinstance(delta, str):
                tally.add_text(delta)
        elif kind == "response.output_item.done":
            if _is_client_call(event.get("item")):
                tally.ended_with_tool_call = True
        elif kind in _TERMINAL_EVENTS:
            _read_response(tally, event.get("response"))
            return TERMINAL
        elif kind == "error":
            _failed(tally, event)
        return KEEP

    # -- memory --------------------------------------------------------------------------------

    def conversation(self, body: Body) -> Conversation:
        messages = responses_messages(body.get("input"))
        system = [body["instructions"]] if isinstance(body.get("instructions"), str) else []
        for message in messages:
            if message["role"] == "system":
                system.extend(content_texts(message.get("content")))
        return Conversation(
            system="\n".join(t for t in system if t),
            messages=messages,
            max_tokens=body.get("max_output_tokens"),
        )

    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
        """Default: a new `input_text` part at the end of the last user message item (a string
        `input` becomes one user message item), so earlier items stay byte-identical for the
        prompt cache. `system`: appended to `instructions`."""
        if strategy == "system":
            instructions = body.get("instructions")
            has = isinstance(instructions, str) and instructions
            body["instructions"] = f"{instructions}\n\n{block}" if has else block
            return
        given = body.get("input")
        if isinstance(given, str):
            given = body["input"] = [{"type": "message", "role": "user", "content": given}]
        if not isinstance(given, list):
            return
        last = _last_user_item(given)
        if last is not None:
            _add_part(last, block, strategy == "user_prefix")

    # -- answers the gateway makes itself ------------------------------------------------------

    def echo_view(self, body: Body) -> Body:
        view: Body = {"input": body.get("input")}
        if "instructions" in body:
            view = {"instructions": body.get("instructions"), **view}
        return view

    def synth_response(
        self, response_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
    ) -> Body:
        response = response_shell("resp_" + response_id, model, "completed")
        response["completed_at"] = response["created_at"]
        response["output"] = [
            {
                "id": "msg_" + response_id,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
        response["usage"] = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return response

    def synth_stream(self, response: Body, client_wants_usage: bool) -> list[bytes]:
        return response_events(response)

    # -- translation ---------------------------------------------------------------------------

    async def translate(self, litellm: ModuleType, body: Body, call: Translation) -> Translated:
        if body.get("previous_response_id"):
            raise GatewayError(
                400,
                f"`previous_response_id` cannot be used with {call.response_model!r}, whose "
                "provider has no Responses API: send the whole conversation in `input`",
                "previous_response_not_supported",
            )
        request = responses_request(body)
        request.setdefault("input", "")
        result = await litellm.aresponses(
            model=call.model, stream=call.stream, **call.common, **request
        )
        if not call.stream:
            answer = result.model_dump(mode="json", exclude_none=True)
            answer["model"] = call.response_model
            return Translated(body=answer)
        return Translated(events=_renumbered(result, call.response_model))


async def _renumbered(stream: Any, model: str) -> AsyncIterator[bytes]:
    """LiteLLM's Responses events, framed as the API frames them, numbered in order."""
    number = 0
    async for event in stream:
        data = event.model_dump(mode="json", exclude_none=True)
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            continue
        data["sequence_number"] = number
        number += 1
        response = data.get("response")
        if isinstance(response, dict):
            response["model"] = model
        yield framed(data, data["type"])


OPENAI_RESPONSES = OpenAIResponses()
