"""The native Gemini API: `POST /v1beta/models/{model}:generateContent | :streamGenerateContent`
(and `:countTokens`, the models list). The model is named in the URL; a stream is chosen by the
method (`alt=sse` for SSE, else one JSON array)."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
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
)
from memproxy_cli.api.openai_chat import chat_params, split_text
from memproxy_cli.api.tally import Tally, as_int
from memproxy_cli.errors import GatewayError
from memproxy_cli.memory.conversation import Conversation

if TYPE_CHECKING:
    from memproxy_cli.config import InjectionStrategy


def snake(name: str) -> str:
    """`maxOutputTokens` -> `max_output_tokens`."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


_MODEL = "{model:[^:]+}"  # configured names may hold a slash (memproxy/echo)
# google-genai 3 calls /v1, Gemini CLI /v1beta; upstream, the route's base names the version.
_VERSION = "{version:v1beta|v1}"
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

GEMINI_STATUSES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    410: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    431: "INVALID_ARGUMENT",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FINISH: Mapping[str, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


def get(obj: Any, name: str) -> Any:
    """A field by its camelCase name or its snake_case one (the API reads both)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(name)
    return obj.get(snake(name)) if value is None else value


def gemini_usage(tally: Tally, usage: Any) -> None:
    """`usageMetadata`: thoughts are billed as output, so they count as completion tokens."""
    if not isinstance(usage, dict):
        return
    tally.prompt_tokens = as_int(get(usage, "promptTokenCount"), tally.prompt_tokens)
    candidates = as_int(get(usage, "candidatesTokenCount"), None)
    thoughts = as_int(get(usage, "thoughtsTokenCount"), None)
    if candidates is not None or thoughts is not None:
        tally.completion_tokens = (candidates or 0) + (thoughts or 0)
    cached = get(usage, "cachedContentTokenCount")
    tally.cache_read_tokens = as_int(cached, tally.cache_read_tokens)


def _parts(content: Any) -> list[dict[str, Any]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _answer_text(parts: list[dict[str, Any]]) -> str:
    """The answer's text: text parts that are not thoughts."""
    return "".join(
        p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
    )


def _tally_parts(tally: Tally, parts: list[dict[str, Any]]) -> None:
    """The answer's text, and whether it calls a tool (the client runs it and calls again)."""
    tally.add_text(_answer_text(parts))
    if any(isinstance(get(p, "functionCall"), dict) for p in parts):
        tally.ended_with_tool_call = True


def _first_candidate(body: Any) -> dict[str, Any] | None:
    candidates = body.get("candidates") if isinstance(body, dict) else None
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return None


def without_key(query: str) -> str:
    """The query string without the `key` credential parameter, the rest byte for byte."""
    if "key" not in query:
        return query
    return "&".join(p for p in query.split("&") if p.partition("=")[0] != "key")


class Gemini(ApiFamily):
    name: ClassVar[str] = "gemini"
    wire: ClassVar[Wire] = "gemini"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint(
            "POST", f"/{_VERSION}/models/{_MODEL}:{{method:generateContent|streamGenerateContent}}"
        ),
        Endpoint("POST", f"/{_VERSION}/models/{_MODEL}:countTokens", "gemini_count_tokens"),
        Endpoint("GET", "/v1beta/models", "gemini_models"),
        Endpoint("GET", f"/v1beta/models/{_MODEL}", "gemini_model"),
    )
    path_prefixes: ClassVar[tuple[str, ...]] = ("/v1beta/",)
    error_types: ClassVar[Mapping[int, str]] = GEMINI_STATUSES

    # -- ingress -------------------------------------------------------------------------------

    def model_of(self, match_info: Mapping[str, str], body: Body) -> str:
        model = match_info.get("model", "")
        if not model:
            raise GatewayError(400, "the model is named in the path: /v1beta/models/{model}:...")
        return model

    def is_stream(
        self, match_info: Mapping[str, str], query: Mapping[str, str], body: Body
    ) -> bool:
        return match_info.get("method") == "streamGenerateContent"

    def validate(self, body: Body) -> None:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise GatewayError(400, "`contents` is required and must be a non-empty array")
        for i, content in enumerate(contents):
            if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
                raise GatewayError(400, f"contents[{i}] must be an object with a `parts` array")
            role = content.get("role")
            if role is not None and not isinstance(role, str):
                raise GatewayError(400, f"contents[{i}].role must be a string")
        system = get(body, "systemInstruction")
        if system is not None and not isinstance(system, dict):
            raise GatewayError(400, "`systemInstruction` must be a Content object")
        config = get(body, "generationConfig")
        if config is not None and not isinstance(config, dict):
            raise GatewayError(400, "`generationConfig` must be an object")

    def upstream_path(self, model: str, stream: bool) -> str:
        method = "streamGenerateContent" if stream else "generateContent"
        return f"/models/{model}:{method}"

    def upstream_query(self, query: str) -> str:
        return without_key(query)

    # -- errors --------------------------------------------------------------------------------

    def error_body(self, status: int, message: str, code: str | None = None) -> Body:
        kind = GEMINI_STATUSES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return {"error": {"code": status, "message": message, "status": kind}}

    # -- responses -----------------------------------------------------------------------------

    def tally_response(self, tally: Tally, body: Any) -> None:
        if isinstance(body, list):  # a stream without alt=sse is one JSON array of chunks
            for chunk in body:
                self.tally_event(tally, chunk, True)
            return
        if not isinstance(body, dict):
            return
        gemini_usage(tally, get(body, "usageMetadata"))
        candidate = _first_candidate(body)
        if candidate is not None:
            _tally_parts(tally, _parts(candidate.get("content")))

    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        if not isinstance(event, dict):
            return KEEP
        gemini_usage(tally, get(event, "usageMetadata"))
        candidate = _first_candidate(event)
        if candidate is None:
            return KEEP
        _tally_parts(tally, _parts(candidate.get("content")))
        return TERMINAL if get(candidate, "finishReason") else KEEP

    # -- memory --------------------------------------------------------------------------------

    def conversation(self, body: Body) -> Conversation:
        """Memory's view. A request for JSON fitting a schema is a side call (Gemini CLI's
        model router and checkers): memory sees no messages in it. A subagent's conversation
        (it starts with a model-written prompt) is marked so."""
        system = _parts(get(body, "systemInstruction"))
        if _is_structured(get(body, "generationConfig")):
            return Conversation(system="", messages=[], max_tokens=None)
        messages: list[dict[str, Any]] = []
        contents = body.get("contents")
        for content in contents if isinstance(contents, list) else []:
            if not isinstance(content, dict):
                continue
            role = "assistant" if content.get("role") == "model" else "user"
            messages.append({"role": role, "content": _blocks(_parts(content))})
        max_tokens = get(get(body, "generationConfig"), "maxOutputTokens")
        return Conversation(
            system="\n".join(p["text"] for p in system if isinstance(p.get("text"), str)),
            messages=messages,
            max_tokens=max_tokens,
            subagent=_is_subagent(body),
        )

    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
        """Default: a new text part at the end of the last user content, so everything before
        it stays byte-identical (context caching holds). `system`: a part at the end of
        `systemInstruction`."""
        part = {"text": block}
        if strategy == "system":
            system = get(body, "systemInstruction")
            if not isinstance(system, dict):
                system = body["systemInstruction"] = {"parts": []}
            parts = system.get("parts")
            system["parts"] = [*parts, part] if isinstance(parts, list) else [part]
            return
        contents = body.get("contents")
        if not isinstance(contents, list):
            return
        last = next(
            (
                c
                for c in reversed(contents)
                if isinstance(c, dict) and c.get("role", "user") == "user"
            ),
            None,
        )
        if last is None or not isinstance(last.get("parts"), list):
            return
        last["parts"] = (
            [part, *last["parts"]] if strategy == "user_prefix" else [*last["parts"], part]
        )

    def echo_view(self, body: Body) -> Body:
        view: Body = {"contents": body.get("contents")}
        system = get(body, "systemInstruction")
        if system is not None:
            view = {"systemInstruction": system, **view}
        return view

    # -- answers the gateway makes itself ------------------------------------------------------

    def synth_response(
        self, response_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
    ) -> Body:
        return {
            "candidates": [
                {
                    "content": {"parts": [{"text": text}], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            },
            "modelVersion": model,
            "responseId": response_id,
        }

    def synth_stream(self, response: Body, client_wants_usage: bool) -> list[bytes]:
        candidate = response["candidates"][0]
        text = _answer_text(candidate["content"]["parts"])
        pieces = split_text(text, 4) or [""]
        events = []
        for i, piece in enumerate(pieces):
            chunk_candidate: Body = {
                "content": {"parts": [{"text": piece}], "role": "model"},
                "index": 0,
            }
            chunk: Body = {"candidates": [chunk_candidate]}
            if i == len(pieces) - 1:
                chunk_candidate["finishReason"] = candidate.get("finishReason", "STOP")
                chunk["usageMetadata"] = response["usageMetadata"]
            chunk["modelVersion"] = response["modelVersion"]
            chunk["responseId"] = response["responseId"]
            events.append(framed(chunk))
        return events

    # -- translation ---------------------------------------------------------------------------

    async def translate(self, litellm: ModuleType, body: Body, call: Translation) -> Translated:
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


_ids = itertools.count(1)


def _blocks(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gemini parts as memory's chat blocks: a functionResponse is a tool result, not the user."""
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part.get("text"), str) and not part.get("thought"):
            kind = "context" if _is_client_context(part["text"]) else "text"
            blocks.append({"type": kind, "text": part["text"]})
        elif isinstance(get(part, "functionResponse"), dict):
            response = get(part, "functionResponse")
            blocks.append(
                {
                    "type": "tool_result",
                    "name": response.get("name"),
                    "content": _tool_output(response.get("response")),
                }
            )
        elif isinstance(get(part, "functionCall"), dict):
            fc = get(part, "functionCall")
            blocks.append({"type": "tool_use", "name": fc.get("name"), "input": fc.get("args")})
    return blocks


def _is_structured(config: Any) -> bool:
    return get(config, "responseMimeType") == "application/json" and (
        get(config, "responseJsonSchema") is not None or get(config, "responseSchema") is not None
    )


def _is_subagent(body: Body) -> bool:
    """Gemini CLI marks a subagent only in the body: it offers `complete_task` (how a subagent
    ends) and not `invoke_agent` (how the main conversation starts one)."""
    names = set()
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        declarations = get(tool, "functionDeclarations")
        for decl in declarations if isinstance(declarations, list) else []:
            if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                names.add(decl["name"])
    return "complete_task" in names and "invoke_agent" not in names


def _is_client_context(text: str) -> bool:
    """Gemini CLI sends its environment (date, OS, folder tree) as a part of its own in the
    first user content: context for the model, not the user's words."""
    stripped = text.strip()
    return stripped.startswith("<session_context>") and stripped.endswith("</session_context>")


def _tool_output(response: Any) -> str:
    """A function's result as text: Gemini CLI sends `{"output": "..."}`."""
    if isinstance(response, dict) and len(response) == 1:
        value = next(iter(response.values()))
        if isinstance(value, str):
            return value
    return orjson.dumps(response).decode()


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
        for p in _parts(get(request, "systemInstruction"))
        if isinstance(p.get("text"), str)
    )
    if system:
        messages.append({"role": "system", "content": system})
    ids = _CallIds()
    for content in request.get("contents") or []:
        if not isinstance(content, dict):
            continue
        parts = _parts(content)
        if content.get("role") == "model":
            messages.extend(_assistant_message(parts, ids))
        else:
            messages.extend(_user_messages(parts, ids))
    return messages


def _assistant_message(parts: list[dict[str, Any]], ids: _CallIds) -> list[dict[str, Any]]:
    text = _answer_text(parts)
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
                    "content": _tool_output(fr.get("response")),
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


def gemini_model(name: str) -> Body:
    """A Model resource for a model memproxy serves itself (configured, or the echo model)."""
    return {
        "name": f"models/{name}",
        "displayName": name,
        "description": "served by memproxy",
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


GEMINI = Gemini()
