"""Gemini requests as chat completions and chat completions as Gemini responses, for a
configured model whose provider has no Gemini API (called through LiteLLM)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import orjson

from memproxy_cli.api.family import Body, Translated, Translation, framed
from memproxy_cli.api.gemini import answer_text, get, parts_of, snake, tool_output
from memproxy_cli.api.openai_chat import chat_params
from memproxy_cli.api.tally import as_int

# The request fields a translated call is built from; everything else (cachedContent, labels,
# safetySettings, unknown fields) is dropped before the call is made.
_REQUEST_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig", "generationConfig")
GEMINI_REQUEST_FIELDS = frozenset(_REQUEST_FIELDS + tuple(snake(f) for f in _REQUEST_FIELDS))
# generationConfig fields with a chat-completions meaning, and the chat field each becomes.
_GENERATION_FIELDS: Mapping[str, str] = {
    "temperature": "temperature",
    "topP": "top_p",
    "maxOutputTokens": "max_tokens",
    "stopSequences": "stop",
    "candidateCount": "n",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "seed": "seed",
}
# Schema keywords a translated tool or response schema keeps (JSON Schema's common subset).
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "enum",
        "anyOf",
        "oneOf",
        "allOf",
        "default",
        "format",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "additionalProperties",
        "title",
        "nullable",
        "$ref",
        "$defs",
        "const",
    }
)

_FINISH: Mapping[str, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


_ids = itertools.count(1)


async def translate(litellm: ModuleType, body: Body, call: Translation) -> Translated:
    """Gemini to chat completions and back, built from GEMINI_REQUEST_FIELDS only."""
    request = {k: v for k, v in body.items() if k in GEMINI_REQUEST_FIELDS}
    messages = chat_messages_of(request)
    params = chat_params(chat_options(request))
    response_id = f"memproxy{next(_ids):06d}"
    if not call.stream:
        result = await litellm.acompletion(
            model=call.model, messages=messages, **call.common, **params
        )
        document = result.model_dump(exclude_none=True)
        return Translated(body=gemini_response(document, call.response_model, response_id))
    params["stream_options"] = {"include_usage": True}
    stream = await litellm.acompletion(
        model=call.model, messages=messages, stream=True, **call.common, **params
    )
    return Translated(events=_gemini_events(stream, call.response_model, response_id))


# -- Gemini request -> chat completions --------------------------------------------------------


@dataclass
class _CallIds:
    """Pairs each functionResponse with its functionCall (by id, else by name in order)."""

    pending: dict[str, list[str]] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def for_call(self, fc: dict[str, Any]) -> str:
        call_id = fc.get("id") if isinstance(fc.get("id"), str) else None
        call_id = call_id or f"call_{next(self.counter)}"
        self.pending.setdefault(str(fc.get("name", "")), []).append(call_id)
        return call_id

    def for_response(self, fr: dict[str, Any]) -> str:
        name = str(fr.get("name", ""))
        waiting = self.pending.get(name, [])
        given = str(fr["id"]) if isinstance(fr.get("id"), str) else None
        if given and given in waiting:
            waiting.remove(given)
            return given
        if waiting:
            return waiting.pop(0)
        return given or f"call_{next(self.counter)}"


def chat_messages_of(request: Body) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = "\n\n".join(
        p["text"]
        for p in parts_of(get(request, "systemInstruction"))
        if isinstance(p.get("text"), str)
    )
    if system:
        messages.append({"role": "system", "content": system})
    ids = _CallIds()
    for content in request.get("contents") or []:
        if not isinstance(content, dict):
            continue
        parts = parts_of(content)
        if content.get("role") == "model":
            messages.extend(_assistant_message(parts, ids))
        else:
            messages.extend(_user_messages(parts, ids))
    return messages


def _assistant_message(parts: list[dict[str, Any]], ids: _CallIds) -> list[dict[str, Any]]:
    text = answer_text(parts)
    calls = []
    for part in parts:
        fc = get(part, "functionCall")
        if isinstance(fc, dict):
            calls.append(
                {
                    "id": ids.for_call(fc),
                    "type": "function",
                    "function": {
                        "name": str(fc.get("name", "")),
                        "arguments": orjson.dumps(fc.get("args") or {}).decode(),
                    },
                }
            )
    if not text and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _user_messages(parts: list[dict[str, Any]], ids: _CallIds) -> list[dict[str, Any]]:
    """Tool results first (they must follow the assistant's calls), then what the user said."""
    out: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    for part in parts:
        fr = get(part, "functionResponse")
        inline = get(part, "inlineData")
        if isinstance(fr, dict):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": ids.for_response(fr),
                    "content": tool_output(fr.get("response")),
                }
            )
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            blocks.append({"type": "text", "text": part["text"]})
        elif isinstance(inline, dict) and isinstance(inline.get("data"), str):
            mime = get(inline, "mimeType") or "image/png"
            url = f"data:{mime};base64,{inline['data']}"
            blocks.append({"type": "image_url", "image_url": {"url": url}})
    if blocks:
        only_text = len(blocks) == 1 and blocks[0]["type"] == "text"
        out.append({"role": "user", "content": blocks[0]["text"] if only_text else blocks})
    return out


def chat_options(request: Body) -> Body:
    """Chat-completions options from generationConfig, tools and toolConfig."""
    options: Body = {}
    config = get(request, "generationConfig")
    if isinstance(config, dict):
        for name, chat_name in _GENERATION_FIELDS.items():
            if get(config, name) is not None:
                options[chat_name] = get(config, name)
        schema = get(config, "responseJsonSchema") or get(config, "responseSchema")
        if get(config, "responseMimeType") == "application/json":
            options["response_format"] = (
                {
                    "type": "json_schema",
                    "json_schema": {"name": "response", "schema": _schema(schema)},
                }
                if isinstance(schema, dict)
                else {"type": "json_object"}
            )
    tools = _tools(request.get("tools"))
    if tools:
        options["tools"] = tools
        choice = _tool_choice(get(request, "toolConfig"))
        if choice is not None:
            options["tool_choice"] = choice
    return options


def _tools(raw: Any) -> list[dict[str, Any]]:
    tools = []
    for tool in raw if isinstance(raw, list) else []:
        declarations = get(tool, "functionDeclarations")
        for decl in declarations if isinstance(declarations, list) else []:
            if not isinstance(decl, dict) or not isinstance(decl.get("name"), str):
                continue
            function: Body = {"name": decl["name"]}
            if isinstance(decl.get("description"), str):
                function["description"] = decl["description"]
            schema = get(decl, "parametersJsonSchema") or decl.get("parameters")
            function["parameters"] = (
                _schema(schema) if isinstance(schema, dict) else {"type": "object"}
            )
            tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(config: Any) -> Any:
    calling = get(config, "functionCallingConfig")
    if not isinstance(calling, dict):
        return None
    mode = str(calling.get("mode") or "AUTO").upper()
    allowed = get(calling, "allowedFunctionNames")
    if mode in ("ANY", "VALIDATED") and isinstance(allowed, list) and len(allowed) == 1:
        return {"type": "function", "function": {"name": str(allowed[0])}}
    return {"ANY": "required", "NONE": "none"}.get(mode, "auto")


def _schema(schema: Any) -> Any:
    """A Gemini schema as JSON Schema: OpenAPI's upper-case types lowered, unknown keys gone."""
    if isinstance(schema, list):
        return [_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: Body = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "type":
            out[key] = value.lower() if isinstance(value, str) else value
        elif key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: _schema(sub) for name, sub in value.items()}
        elif key == "nullable":
            continue
        else:
            out[key] = _schema(value) if isinstance(value, dict | list) else value
    return out


# -- chat completions -> Gemini response -------------------------------------------------------


def _usage_metadata(usage: Any) -> Body:
    usage = usage if isinstance(usage, dict) else {}
    prompt = as_int(usage.get("prompt_tokens"), 0) or 0
    completion = as_int(usage.get("completion_tokens"), 0) or 0
    metadata: Body = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion,
        "totalTokenCount": prompt + completion,
    }
    details = usage.get("prompt_tokens_details")
    cached = as_int(details.get("cached_tokens"), None) if isinstance(details, dict) else None
    if cached:
        metadata["cachedContentTokenCount"] = cached
    return metadata


def _call_part(call_id: str | None, name: str, arguments: str) -> Body:
    try:
        args = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        args = {}
    function: Body = {"name": name, "args": args if isinstance(args, dict) else {}}
    if call_id:
        function["id"] = call_id
    return {"functionCall": function}


def gemini_response(document: Body, model: str, response_id: str) -> Body:
    """A chat completion as a GenerateContentResponse."""
    choices = document.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[Body] = []
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append({"text": message["content"]})
    for tc in message.get("tool_calls") or []:
        function = tc.get("function") or {}
        arguments = function.get("arguments")
        parts.append(
            _call_part(
                tc.get("id"),
                function.get("name", ""),
                arguments if isinstance(arguments, str) else "",
            )
        )
    return {
        "candidates": [
            {
                "content": {"parts": parts or [{"text": ""}], "role": "model"},
                "finishReason": _FINISH.get(str(choice.get("finish_reason")), "STOP"),
                "index": 0,
            }
        ],
        "usageMetadata": _usage_metadata(document.get("usage")),
        "modelVersion": model,
        "responseId": response_id,
    }


@dataclass
class _PendingCall:
    call_id: str | None = None
    name: str = ""
    arguments: str = ""


async def _gemini_events(stream: Any, model: str, response_id: str) -> AsyncIterator[bytes]:
    """Chat-completion chunks as Gemini SSE chunks: text as it arrives, function calls (whole,
    as Gemini sends them) and the finish reason with the usage in the last chunk."""
    calls: dict[int, _PendingCall] = {}
    finish: str | None = None
    usage: Any = None
    async for chunk in stream:
        data = chunk.model_dump(exclude_none=True)
        usage = data.get("usage") or usage
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            finish = choice.get("finish_reason") or finish
            delta = choice.get("delta") or {}
            for tc in delta.get("tool_calls") or []:
                pending = calls.setdefault(int(tc.get("index") or 0), _PendingCall())
                function = tc.get("function") or {}
                pending.call_id = tc.get("id") or pending.call_id
                pending.name = function.get("name") or pending.name
                pending.arguments += function.get("arguments") or ""
            text = delta.get("content")
            if isinstance(text, str) and text:
                yield framed(_chunk([{"text": text}], model, response_id))
    parts = [_call_part(c.call_id, c.name, c.arguments) for _, c in sorted(calls.items())]
    last = _chunk(parts or [{"text": ""}], model, response_id)
    last["candidates"][0]["finishReason"] = _FINISH.get(str(finish), "STOP")
    last["usageMetadata"] = _usage_metadata(usage)
    yield framed(last)


def _chunk(parts: list[Body], model: str, response_id: str) -> Body:
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}],
        "modelVersion": model,
        "responseId": response_id,
    }
