"""The control API the CLI drives, served on a Unix socket (mode 0600) only."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from memproxy_cli import __version__
from memproxy_cli.gateway.listeners import ListenerManager
from memproxy_cli.gateway.resources import LITELLM, OBSERVER, RECORDER, SESSIONS
from memproxy_cli.gateway.state import STATE

CONTROL: web.AppKey[Controller] = web.AppKey("memproxy_controller")


class Controller:
    """What the daemon can be asked to do: status, attach, detach, reload, shutdown."""

    def __init__(
        self,
        gateway: web.Application,
        listeners: ListenerManager,
        url: str,
        reload: Callable[[], Awaitable[str | None]],
        shutdown: asyncio.Event,
    ) -> None:
        self.gateway = gateway
        self.state = gateway[STATE]
        self.listeners = listeners
        self.url = url
        self.reload = reload
        self.shutdown = shutdown

    def status(self) -> dict[str, Any]:
        import time

        state, litellm = self.state, self.gateway.get(LITELLM)
        recorder = self.gateway.get(RECORDER)
        return {
            "pid": os.getpid(),
            "url": self.url,
            "version": __version__,
            "started_at": state.started_at,
            "uptime_s": round(time.time() - state.started_at, 3),
            "listeners": [
                {"project": project, "port": port}
                for project, port in sorted(self.listeners.listening().items())
            ],
            "inflight": state.inflight,
            "requests_total": state.requests_total,
            "litellm_ready": bool(litellm and litellm.ready),
            "config": state.config.source,
            "spend_writer": recorder.stats if recorder is not None else None,
            "cooldowns": state.deployments.cooldowns(),
        }

    def sessions(self) -> list[dict[str, Any]]:
        """Upstream sessions as they are now, each with its deployments in cooldown."""
        from memproxy_cli.upstream.health import with_cooldowns

        sessions = self.gateway.get(SESSIONS)
        entries = sessions.snapshot() if sessions is not None else []
        return with_cooldowns(entries, self.state.deployments.cooldowns())

    def registry(self) -> Any:
        from memproxy_cli.registry import PortRegistry

        listeners = self.state.config.listeners
        return PortRegistry(
            self.state.paths, (listeners.port_range_start, listeners.port_range_end)
        )

    async def attach(self, project: str, port: int | None) -> dict[str, Any]:
        registry = self.registry()
        assignment = await asyncio.to_thread(registry.assign, project, port)
        try:
            await self.listeners.open(assignment.project, assignment.port)
        except OSError as exc:
            from memproxy_cli.registry import PortUnavailable

            raise PortUnavailable(
                f"port {assignment.port} for {project!r} cannot be opened: {exc.strerror}"
            ) from None
        return {
            "project": assignment.project,
            "port": assignment.port,
            "created": assignment.created,
            "skipped": [{"port": p, "reason": r} for p, r in assignment.skipped],
        }

    async def detach(self, project: str) -> dict[str, Any]:
        closed = await self.listeners.close(project)
        released = await asyncio.to_thread(self.registry().release, project)
        return {"project": project, "closed": closed, "released": released}

    async def restore_listeners(self) -> list[str]:
        """Reopen every registered project's listener; returns the problems met."""
        from memproxy_cli.registry import RegistryError

        try:
            entries = await asyncio.to_thread(self.registry().entries)
        except RegistryError as exc:
            return [str(exc)]
        problems = []
        for entry in entries:
            try:
                await self.listeners.open(entry.project, entry.port)
            except OSError as exc:
                problems.append(f"{entry.project} on port {entry.port}: {exc.strerror}")
        return problems


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _status(request: web.Request) -> web.Response:
    return _json(request.app[CONTROL].status())


class BadRequest(Exception):
    """A control request whose body is not what the endpoint takes."""


async def _fields(request: web.Request) -> tuple[str, int | None]:
    """`project` (a string) and `port` (an integer or absent) of a JSON object body."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    project, port = body.get("project"), body.get("port")
    if not isinstance(project, str):
        raise BadRequest("`project` must be a string")
    if port is not None and (type(port) is not int or not 1 <= port <= 65535):
        raise BadRequest("`port` must be an integer between 1 and 65535")
    return project, port


async def _attach(request: web.Request) -> web.Response:
    from memproxy_cli.registry import RegistryError

    try:
        project, port = await _fields(request)
        result = await request.app[CONTROL].attach(project, port)
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    except RegistryError as exc:
        return _json({"error": str(exc)}, 409)
    return _json(result)


async def _detach(request: web.Request) -> web.Response:
    from memproxy_cli.registry import RegistryError

    try:
        project, _ = await _fields(request)
        return _json(await request.app[CONTROL].detach(project))
    except BadRequest as exc:
        return _json({"error": str(exc)}, 400)
    except RegistryError as exc:
        return _json({"error": str(exc)}, 409)


async def _reload(request: web.Request) -> web.Response:
    problem = await request.app[CONTROL].reload()
    if problem:
        return _json({"reloaded": False, "error": problem}, 400)
    return _json({"reloaded": True})


async def _shutdown(request: web.Request) -> web.Response:
    request.app[CONTROL].shutdown.set()
    return _json({"stopping": True})


async def _live(request: web.Request) -> web.Response:
    """What `memproxy top` shows: recent requests and rolling aggregates, from memory."""
    controller = request.app[CONTROL]
    observer = controller.gateway.get(OBSERVER)
    if observer is None:
        return _json({"error": "the gateway is not serving yet"}, 503)
    return _json(observer.live.snapshot(inflight=controller.state.inflight))


async def _sessions(request: web.Request) -> web.Response:
    return _json(request.app[CONTROL].sessions())


def build_control_app(controller: Controller) -> web.Application:
    app = web.Application()
    app[CONTROL] = controller
    app.router.add_get("/status", _status)
    app.router.add_post("/attach", _attach)
    app.router.add_post("/detach", _detach)
    app.router.add_post("/reload", _reload)
    app.router.add_post("/shutdown", _shutdown)
    app.router.add_get("/sessions", _sessions)
    app.router.add_get("/live", _live)
    return app
