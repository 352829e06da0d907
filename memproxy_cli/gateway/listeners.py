"""Project listeners: one extra TCP site per attached project on the gateway's runner."""

from __future__ import annotations

import logging

from aiohttp import web

from memproxy_cli.gateway.state import GatewayState

log = logging.getLogger("memproxy.listeners")


class ListenerManager:
    """Opens and closes per-project sites without restarting the daemon."""

    def __init__(self, runner: web.AppRunner, state: GatewayState, host: str) -> None:
        self._runner = runner
        self._state = state
        self._host = host
        self._sites: dict[str, tuple[int, web.TCPSite]] = {}

    def listening(self) -> dict[str, int]:
        return {project: port for project, (port, _) in self._sites.items()}

    async def open(self, project: str, port: int) -> None:
        current = self._sites.get(project)
        if current is not None and current[0] == port:
            return
        if current is not None:
            await self.close(project)
        site = web.TCPSite(self._runner, self._host, port, reuse_address=True)
        await site.start()
        self._sites[project] = (port, site)
        self._state.port_projects[port] = project
        log.info("listener opened", extra={"project": project, "port": port})

    async def close(self, project: str) -> bool:
        entry = self._sites.pop(project, None)
        if entry is None:
            return False
        port, site = entry
        self._state.port_projects.pop(port, None)
        await site.stop()
        log.info("listener closed", extra={"project": project, "port": port})
        return True
