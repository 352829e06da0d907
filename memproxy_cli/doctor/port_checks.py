"""Ports: the main port and every registered project port, and who holds each one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memproxy_cli.doctor.result import CheckResult, fail, ok, warn
from memproxy_cli.paths import Paths

if TYPE_CHECKING:
    from memproxy_cli.registry import PortState


def check_ports(paths: Paths, main_port: int) -> list[CheckResult]:
    from memproxy_cli.daemon.process import read_info
    from memproxy_cli.registry import PortRegistry, RegistryError, port_states

    registry_problem: CheckResult | None = None
    info = read_info(paths)
    daemon_pid = info.pid if info is not None else None
    try:
        entries = PortRegistry(paths).entries()
    except RegistryError as exc:
        entries = []
        registry_problem = fail("ports registry", str(exc), f"fix or remove {paths.registry}")
    owners: list[str | None] = [None, *(e.project for e in entries)]
    states = port_states([main_port, *(e.port for e in entries)], daemon_pid)
    results = [
        port_result(owner, state, daemon_pid is not None)
        for owner, state in zip(owners, states, strict=True)
    ]
    return [registry_problem, *results] if registry_problem else results


def port_result(project: str | None, state: PortState, daemon_running: bool) -> CheckResult:
    """One port: ours, free, or taken by someone else (named when the OS tells)."""
    name = f"port {state.port} ({project or 'main'})"
    if state.state == "listening":
        return ok(name, "memproxy listens here")
    if state.state == "not listening":
        if daemon_running:
            fix = f"memproxy attach {project}" if project else "`memproxy down && memproxy up`"
            return warn(name, "free, but the running daemon does not listen here", fix)
        return ok(name, "free (memproxy is not running)")
    holder = f"pid {state.pid} ({state.process or '?'})" if state.pid else "an unknown process"
    if project:
        fix = f"stop {holder}, or `memproxy detach {project} && memproxy attach {project}`"
    else:
        fix = f"stop {holder}, or use another port: `memproxy up --port N` / server.port"
    return fail(name, f"taken by another process: {holder}", fix)
