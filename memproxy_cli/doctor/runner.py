"""Run every check family in order and collect the results."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from memproxy_cli.doctor.result import CheckResult
from memproxy_cli.paths import Paths, get_paths

if TYPE_CHECKING:
    from memproxy_cli.config import Config

Step = Callable[[str], None]


def run_checks(
    config_file: str | None = None, offline: bool = False, on_step: Step | None = None
) -> list[CheckResult]:
    from memproxy_cli.config import Config
    from memproxy_cli.doctor import (
        access_checks,
        config_checks,
        cookie_checks,
        daemon_checks,
        env_checks,
        memory_checks,
        port_checks,
        redis_checks,
        store_checks,
        upstream_checks,
    )

    step = on_step or (lambda _: None)
    paths = get_paths()
    step("config")
    outcome = config_checks.check_config(config_file)
    config = outcome.config
    usable = config or Config()
    main_port = _main_port(paths, usable)
    results = list(outcome.results)
    results += access_checks.check_access(config, config_file)
    step("environment")
    results += env_checks.check_environment(_gateway_ports(paths, main_port))
    step("daemon")
    results += daemon_checks.check_daemon(paths)
    step("ports")
    results += port_checks.check_ports(paths, main_port)
    step("store")
    results += store_checks.check_store(paths, usable.database_url)
    step("redis")
    results.append(redis_checks.check_redis(config.redis_url if config else None))
    step("upstreams")
    results += upstream_checks.check_upstreams(config, offline)
    step("memory backend")
    results += memory_checks.check_memory(config, paths, offline)
    step("cookie jars")
    results += cookie_checks.check_cookies(paths)
    return results


def _main_port(paths: Paths, config: Config) -> int:
    """The running daemon's port, else the configured one."""
    from urllib.parse import urlsplit

    from memproxy_cli.daemon.process import read_info

    info = read_info(paths)
    if info is not None:
        port = urlsplit(info.url).port
        if port:
            return port
    return config.server.port


def _gateway_ports(paths: Paths, main_port: int) -> set[int]:
    from memproxy_cli.registry import PortRegistry, RegistryError

    try:
        return {main_port, *(e.port for e in PortRegistry(paths).entries())}
    except RegistryError:
        return {main_port}


def failed(results: list[CheckResult]) -> bool:
    return any(r.status == "fail" for r in results)
