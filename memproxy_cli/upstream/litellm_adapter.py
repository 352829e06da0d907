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

from memproxy_cli.api.family import Translation
from memproxy_cli.errors import GatewayError
from memproxy_cli.upstream.bounds import close_stream
from memproxy_cli.upstream.headers import caller_key, litellm_key
from memproxy_cli.upstream.translated_errors import translated_error
from memproxy_cli.upstream.transport import UpstreamCall, UpstreamDeps, UpstreamResponse

log = logging.getLogger("memproxy.litellm")


class LiteLLMAdapter:
    """Owns the lazily imported litellm module."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None
        self._task: asyncio.Task[ModuleType] | None = None

    @property
    def ready(self) -> bool:
        return self._module is not None

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
        # The first call pays for lazy imports (1-2 s of CPU): pay it now, in a thread, not on
        # a user's request and not on the event loop, which keeps serving meanwhile.
        await asyncio.to_thread(_warm_up, module)
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

    async def serve(self, call: UpstreamCall, deps: UpstreamDeps) -> UpstreamResponse:
        """Translate `call` for its provider; failures become GatewayErrors without secrets."""
        route = call.route
        litellm = await self.module()
        key = litellm_key(route, call.incoming, bool(deps.config.server.master_key), call.query)
        common: dict[str, Any] = {
            "api_key": key,
            "api_base": route.base_url or None,
            **route.litellm_extra,
        }
        if route.base_url:
            common["shared_session"] = deps.sessions.session_for(route.base_url)
        translation = Translation(
            model=route.litellm_model,
            provider=route.provider,
            common=common,
            stream=call.stream,
            response_model=call.model,
        )
        secrets = (key, caller_key(call.incoming, call.query))
        started = time.perf_counter()
        try:
            result = await call.family.translate(litellm, call.body, translation)
        except GatewayError:
            raise
        except Exception as exc:
            raise translated_error(exc, secrets) from None
        finally:
            call.timing.upstream_s += time.perf_counter() - started
        if result.events is not None:
            return UpstreamResponse(200, events=_guarded(result.events, secrets))
        return UpstreamResponse(200, document=result.body)


def _warm_up(module: ModuleType) -> None:
    try:
        module.completion(
            model="openai/warmup", messages=[{"role": "user", "content": "hi"}], mock_response="ok"
        )
        importlib.import_module("litellm.llms.anthropic.pass_through.adapters.transformation")
    except Exception:
        log.debug("litellm warm-up failed", exc_info=True)


async def _guarded(
    events: AsyncIterator[bytes], secrets: tuple[str | None, ...]
) -> AsyncIterator[bytes]:
    """LiteLLM's stream, with its exceptions turned into GatewayErrors."""
    try:
        async for event in events:
            yield event
    except GatewayError:
        raise
    except Exception as exc:
        raise translated_error(exc, secrets) from None
    finally:
        await close_stream(events)
