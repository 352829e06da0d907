"""The native Gemini API: `POST /v1beta/models/{model}:generateContent | :streamGenerateContent`
(and `:countTokens`, the models list). The model is named in the URL; a stream is chosen by the
method (`alt=sse` for SSE, else one JSON array)."""

from __future__ import annotations

import re
from collections.abc import Mapping
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
from memproxy_cli.api.openai_chat import split_text
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


def parts_of(content: Any) -> list[dict[str, Any]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def answer_text(parts: list[dict[str, Any]]) -> str:
    """The answer's text: text parts that are not thoughts."""
    return "".join(
        p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
    )


def _tally_parts(tally: Tally, parts: list[dict[str, Any]]) -> None:
    """The answer's text, and whether it calls a tool (the client runs it and calls again)."""
    tally.add_text(answer_text(parts))
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
            _tally_parts(tally, parts_of(candidate.get("content")))

    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        if not isinstance(event, dict):
            return KEEP
        gemini_usage(tally, get(event, "usageMetadata"))
        candidate = _first_candidate(event)
        if candidate is None:
            return KEEP
        _tally_parts(tally, parts_of(candidate.get("content")))
        return TERMINAL if get(candidate, "finishReason") else KEEP

    # -- memory --------------------------------------------------------------------------------

    def conversation(self, body: Body) -> Conversation:
        """Memory's view. A request for JSON fitting a schema is a side call (Gemini CLI's
        model router and checkers): memory sees no messages in it. A subagent's conversation
        (it starts with a model-written prompt) is marked so."""
        system = parts_of(get(body, "systemInstruction"))
        if _is_structured(get(body, "generationConfig")):
            return Conversation(system="", messages=[], max_tokens=None)
        messages: list[dict[str, Any]] = []
        contents = body.get("contents")
        for content in contents if isinstance(contents, list) else []:
            if not isinstance(content, dict):
                continue
            role = "assistant" if content.get("role") == "model" else "user"
            messages.append({"role": role, "content": _blocks(parts_of(content))})
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
        text = answer_text(candidate["content"]["parts"])
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
        """Gemini to chat completions and back (gemini_translate.py, loaded with LiteLLM)."""
        from memproxy_cli.api.gemini_translate import translate

        return await translate(litellm, body, call)


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
                    "content": tool_output(response.get("response")),
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


def tool_output(response: Any) -> str:
    """A function's result as text: Gemini CLI sends `{"output": "..."}`."""
    if isinstance(response, dict) and len(response) == 1:
        value = next(iter(response.values()))
        if isinstance(value, str):
            return value
    return orjson.dumps(response).decode()


def gemini_model(name: str) -> Body:
    """A Model resource for a model memproxy serves itself (configured, or the echo model)."""
    return {
        "name": f"models/{name}",
        "displayName": name,
        "description": "served by memproxy",
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


GEMINI = Gemini()
