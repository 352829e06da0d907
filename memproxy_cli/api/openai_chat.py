"""The OpenAI Chat Completions API: `POST /v1/chat/completions`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from memproxy_cli.api.family import (
    DROP,
    KEEP,
    ApiFamily,
    Body,
    Endpoint,
    EventVerdict,
    Prepared,
    Translated,
    Translation,
    Wire,
    framed,
    require_messages,
)
from memproxy_cli.api.inject import add_text, last_user
from memproxy_cli.api.tally import Tally, as_int, blocks_text
from memproxy_cli.errors import GatewayError
from memproxy_cli.memory.conversation import Conversation, chat_messages, content_texts
from memproxy_cli.upstream.bounds import close_stream

if TYPE_CHECKING:
    from memproxy_cli.config import InjectionStrategy

# The only chat fields a request may hand to `litellm.acompletion`. LiteLLM reads many more
# keyword arguments as configuration (api_base, fallbacks, timeout, metadata, callbacks,
# extra_headers, ...): a request must never reach those, so the call is built from this list.
OPENAI_CHAT_FIELDS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
        "response_format",
        "seed",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "stream_options",
        "modalities",
        "audio",
        "prediction",
        "service_tier",
        "thinking",
        "prompt_cache_key",
    }
)

OPENAI_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    503: "service_unavailable",
}


def chat_params(body: Body) -> dict[str, Any]:
    """The allowlisted chat fields of a request or of a translated one."""
    return {k: v for k, v in body.items() if k in OPENAI_CHAT_FIELDS}


def openai_error_body(status: int, message: str, code: str | None = None) -> Body:
    kind = OPENAI_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_usage(tally: Tally, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    tally.prompt_tokens = as_int(usage.get("prompt_tokens"), tally.prompt_tokens)
    tally.completion_tokens = as_int(usage.get("completion_tokens"), tally.completion_tokens)
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        tally.cache_read_tokens = as_int(details.get("cached_tokens"), tally.cache_read_tokens)


class OpenAIChat(ApiFamily):
    name: ClassVar[str] = "openai.chat"
    wire: ClassVar[Wire] = "openai"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("POST", "/v1/chat/completions"),
        Endpoint("POST", "/chat/completions"),
    )
    path_prefixes: ClassVar[tuple[str, ...]] = ("/v1/chat/", "/chat/")
    error_types: ClassVar[Mapping[int, str]] = OPENAI_ERROR_TYPES

    def validate(self, body: Body) -> None:
        require_messages(body)
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise GatewayError(400, "`stream_options` must be an object")

    def prepare(self, body: Body, stream: bool) -> Prepared:
        if not stream:
            return Prepared()
        options: dict[str, Any] = body.get("stream_options") or {}
        if options.get("include_usage"):
            return Prepared(client_wants_usage=True)
        body["stream_options"] = {**options, "include_usage": True}  # the row needs the usage
        return Prepared(modified=True, client_wants_usage=False)

    def upstream_path(self, model: str, stream: bool) -> str:
        return "/chat/completions"

    def error_body(self, status: int, message: str, code: str | None = None) -> Body:
        return openai_error_body(status, message, code)

    def tally_response(self, tally: Tally, body: Any) -> None:
        if not isinstance(body, dict):
            return
        openai_usage(tally, body.get("usage"))
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict):
                tally.add_text(blocks_text(message.get("content")))
                if message.get("tool_calls") or message.get("function_call"):
                    tally.ended_with_tool_call = True
            if choices[0].get("finish_reason") in _TOOL_FINISH:
                tally.ended_with_tool_call = True

    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        if not isinstance(event, dict):
            return KEEP
        choices = event.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and choice.get("index", 0) == 0:
                    content = delta.get("content")
                    if isinstance(content, str):
                        tally.text_parts.append(content)  # Tally.add_text, one call fewer
                    if delta.get("tool_calls") or delta.get("function_call"):
                        tally.ended_with_tool_call = True
                    if choice.get("finish_reason") in _TOOL_FINISH:
                        tally.ended_with_tool_call = True
        usage = event.get("usage")
        if isinstance(usage, dict):
            openai_usage(tally, usage)
            if not choices and not client_wants_usage:
                return DROP  # the usage-only chunk we asked for on the client's behalf
        return KEEP

    def is_done_marker(self, data: bytes) -> bool:
        return data == b"[DONE]"

    def event_counts(self, data: bytes) -> bool:
        # Beyond text and tool calls, a chunk matters only for its usage (which also decides
        # the one dropped chunk). With `include_usage` (memproxy always asks for it) OpenAI
        # puts `"usage":null` in every chunk: a quoted word followed by a colon is a key, so a
        # chunk whose every "usage" is that null holds no usage. Anything spelled with escapes
        # (\u0075sage) is read.
        if b"\\u" in data:
            return True
        keys = data.count(b'"usage"')
        return keys > 0 and keys != data.count(b'"usage":null')

    def first_count(self, run: bytes) -> int:
        # An event's data is a part of its raw bytes. An event before the first `\u`, the
        # first "[DONE]" and the first "usage" key that is not `"usage":null` has neither an
        # escape nor a usage key that is not null: `event_counts` is False for its data, and
        # it is no `[DONE]` marker.
        first = len(run)
        for marker in (b"\\u", b"[DONE]"):
            at = run.find(marker, 0, first)
            if at >= 0:
                first = at
        at = run.find(b'"usage"', 0, first)
        while at >= 0:
            if not run.startswith(b":null", at + 7):
                return at
            at = run.find(b'"usage"', at + 7, first)
        return first

    def conversation(self, body: Body) -> Conversation:
        messages = [_chat_shape(m) for m in chat_messages(body.get("messages"))]
        system = "\n".join(
            t
            for m in messages
            if m.get("role") in ("system", "developer")
            for t in content_texts(m.get("content"))
        )
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        return Conversation(system=system, messages=messages, max_tokens=max_tokens)

    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
        """Default: after the last user message's text (a new part of a list content).
        `system`: a system message right after the leading system/developer messages."""
        messages = body.get("messages")
        if strategy == "system":
            if not isinstance(messages, list):
                return
            at = 0
            while at < len(messages) and isinstance(messages[at], dict):
                if messages[at].get("role") not in ("system", "developer"):
                    break
                at += 1
            messages.insert(at, {"role": "system", "content": block})
            return
        last = last_user(messages)
        if last is not None:
            add_text(last, block, strategy == "user_prefix")

    def synth_response(
        self, response_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
    ) -> Body:
        return {
            "id": "chatcmpl-" + response_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def synth_stream(self, response: Body, client_wants_usage: bool) -> list[bytes]:
        base = {
            "id": response["id"],
            "object": "chat.completion.chunk",
            "created": response["created"],
            "model": response["model"],
        }
        choice = response["choices"][0]
        text = choice["message"].get("content") or ""
        events = [framed({**base, "choices": [_delta({"role": "assistant", "content": ""})]})]
        for part in split_text(text, 4):
            events.append(framed({**base, "choices": [_delta({"content": part})]}))
        finish = choice.get("finish_reason") or "stop"
        events.append(framed({**base, "choices": [_delta({}, finish)]}))
        if client_wants_usage:
            events.append(framed({**base, "choices": [], "usage": response.get("usage")}))
        events.append(b"data: [DONE]\n\n")
        return events

    async def translate(self, litellm: ModuleType, body: Body, call: Translation) -> Translated:
        params = chat_params(body)
        messages = body["messages"]
        if not call.stream:
            result = await litellm.acompletion(
                model=call.model, messages=messages, **call.common, **params
            )
            return Translated(body=result.model_dump(exclude_none=True))
        params["stream_options"] = {"include_usage": True}
        stream = await litellm.acompletion(
            model=call.model, messages=messages, stream=True, **call.common, **params
        )
        return Translated(events=sse_chunks(stream))


_TOOL_FINISH = frozenset({"tool_calls", "function_call"})


def _chat_shape(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message as memory reads it: an assistant's `tool_calls` become `tool_use` blocks
    and a `tool` message a user message with a `tool_result` block (other messages as sent)."""
    role = message.get("role")
    if role == "tool" or role == "function":
        result = {"type": "tool_result", "content": message.get("content")}
        return {"role": "user", "content": [result]}
    calls = message.get("tool_calls")
    if role != "assistant" or not isinstance(calls, list) or not calls:
        return message
    content = message.get("content")
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": content}] if isinstance(content, str) and content else []
    )
    if isinstance(content, list):
        blocks = [b for b in content if isinstance(b, dict)]
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            blocks.append(
                {
                    "type": "tool_use",
                    "name": function.get("name"),
                    "input": _arguments(function.get("arguments")),
                }
            )
    return {"role": "assistant", "content": blocks}


def _arguments(raw: Any) -> Any:
    """A tool call's arguments: chat sends a JSON string; anything unreadable is no input."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


async def sse_chunks(stream: Any) -> AsyncIterator[bytes]:
    """LiteLLM's chunk objects as OpenAI SSE events, ending with `[DONE]`."""
    try:
        async for chunk in stream:
            yield b"data: " + orjson.dumps(chunk.model_dump(exclude_none=True)) + b"\n\n"
        yield b"data: [DONE]\n\n"
    finally:
        await close_stream(stream)


def _delta(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


def split_text(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


OPENAI_CHAT = OpenAIChat()
