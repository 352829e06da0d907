"""The OpenAI Embeddings API: `POST /v1/embeddings`.

Embeddings are not a conversation: nothing is recalled into them and nothing is remembered.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from memproxy_cli.api.family import (
    KEEP,
    ApiFamily,
    Body,
    Endpoint,
    EventVerdict,
    Translated,
    Translation,
    Wire,
)
from memproxy_cli.api.openai_chat import OPENAI_ERROR_TYPES, openai_error_body
from memproxy_cli.api.tally import Tally, as_int
from memproxy_cli.errors import GatewayError
from memproxy_cli.memory.conversation import Conversation

if TYPE_CHECKING:
    from memproxy_cli.config import InjectionStrategy

# The embedding fields a request may hand to `litellm.aembedding`.
EMBEDDING_FIELDS = frozenset({"dimensions", "encoding_format", "user"})
ECHO_DIMENSIONS = 16


class OpenAIEmbeddings(ApiFamily):
    name: ClassVar[str] = "openai.embeddings"
    wire: ClassVar[Wire] = "openai"
    endpoints: ClassVar[tuple[Endpoint, ...]] = (
        Endpoint("POST", "/v1/embeddings"),
        Endpoint("POST", "/embeddings"),
    )
    path_prefixes: ClassVar[tuple[str, ...]] = ("/v1/embeddings", "/embeddings")
    error_types: ClassVar[Mapping[int, str]] = OPENAI_ERROR_TYPES

    def is_stream(
        self, match_info: Mapping[str, str], query: Mapping[str, str], body: Body
    ) -> bool:
        return False

    def validate(self, body: Body) -> None:
        given = body.get("input")
        if isinstance(given, str):
            return
        if not isinstance(given, list) or not given:
            raise GatewayError(
                400, "`input` is required: a string or a non-empty array", "invalid_input"
            )
        if not all(isinstance(i, str | int) for i in given) and not all(
            isinstance(i, list) for i in given
        ):
            raise GatewayError(400, "`input` must be strings, tokens or arrays of tokens")

    def upstream_path(self, model: str, stream: bool) -> str:
        return "/embeddings"

    def error_body(self, status: int, message: str, code: str | None = None) -> Body:
        return openai_error_body(status, message, code)

    def tally_response(self, tally: Tally, body: Any) -> None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict):
            tally.prompt_tokens = as_int(usage.get("prompt_tokens"), tally.prompt_tokens)
            tally.completion_tokens = 0

    def tally_event(self, tally: Tally, event: Any, client_wants_usage: bool) -> EventVerdict:
        return KEEP

    def conversation(self, body: Body) -> Conversation:
        return Conversation()

    def inject(self, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
        return None

    def echo_view(self, body: Body) -> Body:
        given = body.get("input")
        return {"input": [given] if isinstance(given, str) else given}

    def synth_response(
        self, response_id: str, model: str, text: str, prompt_tokens: int, completion_tokens: int
    ) -> Body:
        """One deterministic unit vector per input (the echo model embeds without a model)."""
        inputs = orjson.loads(text)["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(orjson.dumps(item))}
            for i, item in enumerate(inputs)
        ]
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
        return {"object": "list", "data": data, "model": model, "usage": usage}

    def synth_stream(self, response: Body, client_wants_usage: bool) -> list[bytes]:
        return []

    async def translate(self, litellm: ModuleType, body: Body, call: Translation) -> Translated:
        params = {k: v for k, v in body.items() if k in EMBEDDING_FIELDS}
        result = await litellm.aembedding(
            model=call.model, input=body["input"], **call.common, **params
        )
        document = result.model_dump(exclude_none=True)
        document["model"] = call.response_model
        return Translated(body=document)


def _vector(data: bytes) -> list[float]:
    digest = hashlib.sha256(data).digest()[: ECHO_DIMENSIONS * 2]
    raw = [v / 32768.0 for v in struct.unpack(f">{ECHO_DIMENSIONS}h", digest)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


OPENAI_EMBEDDINGS = OpenAIEmbeddings()
