"""Translation through the LiteLLM SDK, for requests whose upstream speaks another API.

LiteLLM costs seconds to import and milliseconds per call, so it is loaded in a background
thread after the daemon serves, warmed up once, and used only where a translation is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import time
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import orjson
from aiohttp import web

from memproxy_cli.gateway.errors import GatewayError, sse_error_event
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.sse import SSEBuffer
from memproxy_cli.gateway.state import GatewayState
from memproxy_cli.memory.redact import CLIP_MARGIN
from memproxy_cli.upstream.headers import caller_key, scrub, upstream_key

log = logging.getLogger("memproxy.litellm")

# OpenAI request fields LiteLLM receives as keyword arguments (the rest stay out).
_OPENAI_PARAMS = frozenset(
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
    }
)


class LiteLLMAdapter:
    """Owns the lazily imported litellm module."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None
        self._task: asyncio.Task[ModuleType] | None = None

    @property
    def ready(self) -> bool:
        return self._module is not None

    @property
    def model_cost(self) -> dict[str, Any] | None:
        return getattr(self._module, "model_cost", None) if self._module else None

    def start(self) -> None:
        """Begin importing litellm in a thread; the first translated request waits for it."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> ModuleType:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        started = time.perf_counter()
        module = await asyncio.to_thread(importlib.import_module, "litellm")
        setattr(module, "suppress_debug_info", True)  # noqa: B010 - module attributes
        setattr(module, "drop_params", True)  # noqa: B010
        self._module = module
        log.info("litellm loaded", extra={"seconds": round(time.perf_counter() - started, 2)})
        try:  # the first call pays for lazy imports: pay it now, not on a user's request
            await module.acompletion(
                model="openai/warmup",
                messages=[{"role": "user", "content": "hi"}],
                mock_response="ok",
            )
        except Exception:
            log.debug("litellm warm-up failed", exc_info=True)
        return module

    async def module(self) -> ModuleType:
        self.start()
        assert self._task is not None
        return await asyncio.shield(self._task)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def serve(self, ex: Exchange, state: GatewayState) -> web.StreamResponse:
        route = ex.route
        assert route is not None
        litellm = await self.module()
        key = upstream_key(route, ex.request.headers, bool(state.config.server.master_key))
        common: dict[str, Any] = {
            "model": route.litellm_model,
            "api_key": key,
            "api_base": route.base_url or None,
            **route.litellm_extra,
        }
        if route.base_url and state.sessions is not None:
            common["shared_session"] = state.sessions.session_for(route.base_url)
        started = time.perf_counter()
        try:
            if ex.api == "openai":
                return await self._chat(litellm, ex, common)
            return await self._messages(litellm, ex, common)
        except GatewayError:
            raise
        except Exception as exc:
            raise _as_gateway_error(exc, (key, caller_key(ex.request.headers))) from None
        finally:
            ex.upstream_s += time.perf_counter() - started

    async def _chat(
        self, litellm: ModuleType, ex: Exchange, common: dict[str, Any]
    ) -> web.StreamResponse:
        params = {k: v for k, v in ex.body.items() if k in _OPENAI_PARAMS}
        params.pop("model", None)
        if not ex.stream:
            result = await litellm.acompletion(messages=ex.body["messages"], **common, **params)
            body = result.model_dump(exclude_none=True)
            ex.tally.openai_response(body)
            ex.row.http_status = 200
            return _json(ex, body)
        params["stream_options"] = {"include_usage": True}
        stream = await litellm.acompletion(
            messages=ex.body["messages"], stream=True, **common, **params
        )
        return await _relay_chunks(ex, _openai_events(ex, stream))

    async def _messages(
        self, litellm: ModuleType, ex: Exchange, common: dict[str, Any]
    ) -> web.StreamResponse:
        from litellm.llms.anthropic.pass_through.adapters.transformation import AnthropicAdapter

        adapter = AnthropicAdapter()
        request = {k: v for k, v in ex.body.items() if k != "stream"}
        request["model"] = common["model"]
        request.setdefault("max_tokens", 4096)
        translated, tool_names = adapter.translate_completion_input_params_with_tool_mapping(
            request, custom_llm_provider=ex.route.provider if ex.route else None
        )
        params = dict(translated or {})
        params.pop("model", None)
        messages = params.pop("messages")
        if not ex.stream:
            result = await litellm.acompletion(messages=messages, **common, **params)
            message = adapter.translate_completion_output_params(result, tool_names)
            body = dict(message or {})
            ex.tally.anthropic_response(body)
            ex.row.http_status = 200
            return _json(ex, body)
        params["stream_options"] = {"include_usage": True}
        stream = await litellm.acompletion(messages=messages, stream=True, **common, **params)
        sse = adapter.translate_completion_output_params_streaming(
            stream, model=ex.row.model or "", tool_name_mapping=tool_names
        )
        return await _relay_chunks(ex, _anthropic_events(ex, sse))


async def _anthropic_events(ex: Exchange, sse: Any) -> AsyncIterator[bytes]:
    buffer = SSEBuffer()
    async for chunk in sse:
        for raw, data in buffer.feed(chunk if isinstance(chunk, bytes) else str(chunk).encode()):
            if data:
                with contextlib.suppress(orjson.JSONDecodeError):
                    ex.tally.anthropic_event(orjson.loads(data))
            yield raw
    rest = buffer.rest()
    if rest:
        yield rest


def _json(ex: Exchange, body: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), content_type="application/json", headers=ex.response_headers
    )


async def _openai_events(ex: Exchange, stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream:
        event = chunk.model_dump(exclude_none=True)
        if ex.tally.openai_event(event) and not ex.client_wants_usage:
            continue
        yield b"data: " + orjson.dumps(event) + b"\n\n"
    yield b"data: [DONE]\n\n"


async def _relay_chunks(ex: Exchange, events: AsyncIterator[bytes]) -> web.StreamResponse:
    out = web.StreamResponse(headers=ex.response_headers)
    out.content_type = "text/event-stream"
    ex.row.http_status = 200
    await out.prepare(ex.request)
    try:
        async for event in events:
            if ex.ttft_s is None:
                ex.ttft_s = ex.elapsed_s()
            await out.write(event)
        await out.write_eof()
    except ConnectionResetError:
        ex.row.status, ex.row.error = "client_disconnect", "client went away mid-stream"
    except Exception as exc:
        err = _as_gateway_error(exc, ())
        ex.row.status, ex.row.error = "error", err.message
        try:
            await out.write(sse_error_event(ex.api, err.status, err.message))
            await out.write_eof()
        except ConnectionResetError:
            pass
    return out


def _as_gateway_error(exc: Exception, secrets: tuple[str | None, ...]) -> GatewayError:
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 502
    text = str(exc)[: 500 + CLIP_MARGIN]  # only what is shown is scrubbed (on the loop)
    message = scrub(text.encode(), secrets).decode("utf-8", "replace")[:500]
    row_status = "upstream_timeout" if status in (408, 504) else "error"
    return GatewayError(status, f"upstream error via LiteLLM: {message}", row_status=row_status)
