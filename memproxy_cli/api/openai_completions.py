"""The legacy OpenAI Completions API: `POST /v1/completions` (what FIM autocomplete uses).

A completion prompt is code around the cursor, not a conversation: nothing is recalled into
it (it would shift the completion) and nothing is remembered.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

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
)
from memproxy_cli.api.openai_chat import (
    OPENAI_CHAT,
    OPENAI_ERROR_TYPES,
    openai_error_body,
    openai_usage,
    split_text,
    sse_chunks,
)
from memproxy_cli.api.tally import Tally
from memproxy_cli.errors import GatewayError
from memproxy_cli.memory.conversation import Conversation

if TYPE_CHECKING:
    from memproxy_cli.config import InjectionStrategy

# The completion fields a request may hand to `litellm.atext_completion`.
COMPLETION_FIELDS = frozenset(
    {
        "suffix",
        "max_tokens",
        "temperature",
        "top_p",
        "n",
        "stop",
        "echo",
        "logprobs",
        "presence_penalty",
        "frequency_penalty",
        "best_of",
        "logit_bias",
        "seed",
        "user",
    }
)


class OpenAICompletions(ApiFamily):
    name: ClassVar[str] = "openai.completions"
    wire: ClassVar[Wire] = "openai"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("POST", "/v1/completions"),
        Endpoint("POST", "/completions"),
    )
    path_prefixes: ClassVar[tuple[str, ...]] = ("/v1/completions", "/completions")
    error_types: ClassVar[Mapping[int, str]] = OPENAI_ERROR_TYPES

    def validate(self, body: Body) -> None:
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            return
        if not isinstance(prompt, list) or not prompt:
            raise GatewayError(
                400, "`prompt` is required: a string or a non-empty array", "invalid_prompt"
            )
        options = body.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise GatewayError(400, "`stream_options` must be an object")

    def prepare(self, body: Body, stream: bool) -> Prepared:
        return OPENAI_CHAT.prepare(body, stream)  # the same stream_options rule

    def upstream_path(self, model: str, stream: bool) -> str:
        return "/completions"

    def error_body(self, status: int, message: str, code: str | None = None) -> Body:
        return openai_error_body(status, message, code)

    def tally_response(self, tally: Tally, body: Any) -> None:
        if not isinstance(body, dict):
            return
        openai_usage(tally, body.get("usage"))
        tally.add_text(_first_text(body))

    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        if not isinstance(event, dict):
            return KEEP
        tally.add_text(_first_text(event))
        usage = event.get("usage")
        if isinstance(usage, dict):
            openai_usage(tally, usage)
            if not event.get("choices") and not client_wants_usage:
                return DROP
        return KEEP

    def is_done_marker(self, data: bytes) -> bool:
        return data == b"[DONE]"

    def conversation(self, body: Body) -> Conversation:
        return Conversation()

    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
        return None

    def echo_view(self, body: Body) -> Body:
        return {"prompt": body.get("prompt")}

    def synth_response(
        self, response_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
    ) -> Body:
        return {
            "id": "cmpl-" + response_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def synth_stream(self, response: Body, client_wants_usage: bool) -> list[bytes]:
        base = {k: response[k] for k in ("id", "object", "created", "model")}
        text = response["choices"][0]["text"]
        events = [
            framed({**base, "choices": [_choice(part, None)]}) for part in split_text(text, 4)
        ]
        events.append(framed({**base, "choices": [_choice("", "stop")]}))
        if client_wants_usage:
            events.append(framed({**base, "choices": [], "usage": response["usage"]}))
        events.append(b"data: [DONE]\n\n")
        return events

    async def translate(self, litellm: ModuleType, body: Body, call: Translation) -> Translated:
        params = {k: v for k, v in body.items() if k in COMPLETION_FIELDS}
        prompt = body["prompt"]
        if not call.stream:
            result = await litellm.atext_completion(
                model=call.model, prompt=prompt, **call.common, **params
            )
            return Translated(body=result.model_dump(exclude_none=True))
        stream = await litellm.atext_completion(
            model=call.model,
            prompt=prompt,
            stream=True,
            stream_options={"include_usage": True},
            **call.common,
            **params,
        )
        return Translated(events=sse_chunks(stream))


def _first_text(body: Body) -> str:
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        text = choices[0].get("text")
        if isinstance(text, str) and choices[0].get("index", 0) == 0:
            return text
    return ""


def _choice(text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}


OPENAI_COMPLETIONS = OpenAICompletions()
