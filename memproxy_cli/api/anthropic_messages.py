"""The Anthropic Messages API: `POST /v1/messages` (and its `count_tokens`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

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
    require_messages,
)
from memproxy_cli.api.inject import add_block, last_user
from memproxy_cli.api.openai_chat import chat_params, split_text
from memproxy_cli.api.tally import Tally, as_int, blocks_text
from memproxy_cli.errors import GatewayError
from memproxy_cli.memory.conversation import Conversation, chat_messages, content_texts
from memproxy_cli.upstream.bounds import close_stream

if TYPE_CHECKING:
    from memproxy_cli.config import InjectionStrategy

# The Messages fields translated for another provider; the rest of a request is dropped before
# LiteLLM's adapter sees it (the adapter copies fields it does not know through as they are).
ANTHROPIC_MESSAGES_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "metadata",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "output_format",
    }
)

ANTHROPIC_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_request(body: Body) -> Body:
    """The allowlisted Messages fields; `metadata` keeps only `user_id`."""
    request = {k: v for k, v in body.items() if k in ANTHROPIC_MESSAGES_FIELDS}
    metadata = request.pop("metadata", None)
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        request["metadata"] = {"user_id": metadata["user_id"]}
    return request


def anthropic_usage(tally: Tally, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    tally.prompt_tokens = as_int(usage.get("input_tokens"), tally.prompt_tokens)
    tally.completion_tokens = as_int(usage.get("output_tokens"), tally.completion_tokens)
    tally.cache_read_tokens = as_int(usage.get("cache_read_input_tokens"), tally.cache_read_tokens)
    tally.cache_write_tokens = as_int(
        usage.get("cache_creation_input_tokens"), tally.cache_write_tokens
    )


class AnthropicMessages(ApiFamily):
    name: ClassVar[str] = "anthropic.messages"
    wire: ClassVar[Wire] = "anthropic"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("POST", "/v1/messages"),
        Endpoint("POST", "/v1/messages/count_tokens", "count_tokens"),
    )
    path_prefixes: ClassVar[tuple[str, ...]] = ("/v1/messages",)
    error_types: ClassVar[Mapping[int, str]] = ANTHROPIC_ERROR_TYPES

    def validate(self, body: Body) -> None:
        require_messages(body)
        max_tokens = body.get("max_tokens")
        if "max_tokens" in body and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
        ):
            raise GatewayError(400, "`max_tokens` must be an integer")
        system = body.get("system")
        if system is not None and not isinstance(system, str | list):
            raise GatewayError(400, "`system` must be a string or an array of content blocks")

    def upstream_path(self, model: str, stream: bool) -> str:
        return "/messages"

    def error_body(self, status: int, message: str, code: str | None = None) -> Body:
        kind = ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def sse_error_event(self, status: int, message: str) -> bytes:
        return framed(self.error_body(status, message), "error")

    def tally_response(self, tally: Tally, body: Any) -> None:
        if not isinstance(body, dict):
            return
        anthropic_usage(tally, body.get("usage"))
        content = body.get("content")
        tally.add_text(blocks_text(content))
        if body.get("stop_reason") == "tool_use" or (
            isinstance(content, list)
            and any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)
        ):
            tally.ended_with_tool_call = True

    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        if not isinstance(event, dict):
            return KEEP
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str):
                    tally.add_text(text)
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                tally.ended_with_tool_call = True
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                anthropic_usage(tally, message.get("usage"))
        elif kind == "message_delta":
            anthropic_usage(tally, event.get("usage"))
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") == "tool_use":
                tally.ended_with_tool_call = True
        elif kind == "message_stop":
            return TERMINAL
        return KEEP

    def first_count(self, run: bytes) -> int:
        # Beyond text and tool calls (unused without memory) only message_start and
        # message_delta (usage) and message_stop (the end) are read. Each one's type is the JSON
        # string "message_...", spelled so or with `\u` escapes.
        first = len(run)
        for marker in (b"\\u", b'"message_'):
            at = run.find(marker, 0, first)
            if at >= 0:
                first = at
        return first

    def conversation(self, body: Body) -> Conversation:
        return Conversation(
            system="\n".join(content_texts(body.get("system"))),
            messages=chat_messages(body.get("messages")),
            max_tokens=body.get("max_tokens"),
        )

    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
        """Default: a new text block at the end of the last user turn (a str content becomes a
        list of blocks); `system` and earlier turns stay byte-identical, so the prompt cache
        holds. `system`: a block at the END of `system`."""
        if strategy == "system":
            system = body.get("system")
            blocks = (
                [{"type": "text", "text": system}] if isinstance(system, str) and system else []
            )
            if isinstance(system, list):
                blocks = list(system)
            body["system"] = [*blocks, {"type": "text", "text": block}]
            return
        last = last_user(body.get("messages"))
        if last is not None:
            add_block(last, {"type": "text", "text": block}, strategy == "user_prefix")

    def echo_view(self, body: Body) -> Body:
        view: Body = {"messages": body.get("messages")}
        if "system" in body:
            view = {"system": body.get("system"), **view}
        return view

    def synth_response(
        self, response_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
    ) -> Body:
        return {
            "id": "msg_" + response_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
        }

    def synth_stream(self, response: Body, client_wants_usage: bool) -> list[bytes]:
        return message_events(response)

    async def translate(self, litellm: ModuleType, body: Body, call: Translation) -> Translated:
        from litellm.llms.anthropic.pass_through.adapters.transformation import AnthropicAdapter

        adapter = AnthropicAdapter()
        request = anthropic_request(body)
        request["model"] = call.model
        request.setdefault("max_tokens", 4096)
        translated, tool_names = adapter.translate_completion_input_params_with_tool_mapping(
            request, custom_llm_provider=call.provider
        )
        converted: dict[str, Any] = dict(translated or {})
        messages = converted.get("messages") or []
        params = chat_params(converted)
        if not call.stream:
            result = await litellm.acompletion(
                model=call.model, messages=messages, **call.common, **params
            )
            message = adapter.translate_completion_output_params(result, tool_names)
            return Translated(body=dict(message or {}))
        params["stream_options"] = {"include_usage": True}
        stream = await litellm.acompletion(
            model=call.model, messages=messages, stream=True, **call.common, **params
        )
        sse = adapter.translate_completion_output_params_streaming(
            stream, model=call.response_model, tool_name_mapping=tool_names
        )
        return Translated(events=_as_bytes(sse, stream))


async def _as_bytes(sse: Any, stream: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in sse:
            yield chunk if isinstance(chunk, bytes) else str(chunk).encode()
    finally:
        await close_stream(stream)


def message_events(message: Body, pieces: int = 4) -> list[bytes]:
    """The Messages API event stream that delivers `message` (text and tool_use blocks)."""
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": min(1, usage.get("output_tokens", 0))}
    events = [framed({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(message.get("content") or []):
        events += _block_events(index, block, pieces)
    delta = {
        "type": "message_delta",
        "delta": {
            "stop_reason": message.get("stop_reason"),
            "stop_sequence": message.get("stop_sequence"),
        },
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    }
    events.append(framed(delta, "message_delta"))
    events.append(framed({"type": "message_stop"}, "message_stop"))
    return events


def _block_events(index: int, block: Body, pieces: int) -> list[bytes]:
    kind = block.get("type")
    if kind == "text":
        parts = split_text(block.get("text", ""), pieces)
        deltas = [{"type": "text_delta", "text": p} for p in parts]
        opening: Body = {"type": "text", "text": ""}
    elif kind == "tool_use":
        deltas = [
            {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        ]
        opening = {**block, "input": {}}
    else:
        deltas, opening = [], block
    start = {"type": "content_block_start", "index": index, "content_block": opening}
    events = [framed(start, "content_block_start")]
    for delta in deltas:
        events.append(
            framed(
                {"type": "content_block_delta", "index": index, "delta": delta},
                "content_block_delta",
            )
        )
    events.append(framed({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return events


ANTHROPIC_MESSAGES = AnthropicMessages()
