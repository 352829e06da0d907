"""Daemon: pidfile against the live process, /health, and the version it runs."""

from __future__ import annotations

from memproxy_cli.doctor.result import CheckResult, fail, ok, warn
from memproxy_cli.paths import Paths

NAME = "daemon"


def check_daemon(paths: Paths) -> list[CheckResult]:
    from memproxy_cli.daemon.process import read_info, read_pid

    pid = read_pid(paths)
    if pid is None:
        return [warn(NAME, "not running (no pidfile)", "start it with `memproxy up`")]
    problem = _pid_problem(pid)
    if problem is not None:
        return [
            fail(
                NAME,
                f"stale pidfile {paths.pidfile}: {problem}",
                f"rm {paths.pidfile}   (or run `memproxy up`, which replaces it)",
            )
        ]
    info = read_info(paths)
    if info is None:
        return [
            fail(
                NAME,
                f"pid {pid} runs but wrote no daemon info ({paths.daemon_info})",
                f"see {paths.daemon_log}; then `memproxy down && memproxy up`",
            )
        ]
    return daemon_health(info.url, pid, paths)


def _pid_problem(pid: int) -> str | None:
    """Why the pid is not a live memproxy daemon, or None when it is one."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"pid {pid} has exited"
        cmdline = " ".join(proc.cmdline())
    except psutil.NoSuchProcess:
        return f"pid {pid} is not running"
    except psutil.AccessDenied:
        return None
    if "memproxy" not in cmdline:
        return f"pid {pid} is now another program ({proc.name()}), not memproxy"
    return None


def daemon_health(url: str, pid: int, paths: Paths) -> list[CheckResult]:
    from memproxy_cli import __version__
    from memproxy_cli.daemon.process import health

    data = health(url, timeout=2.0)
    if data is None:
        return [
            fail(
                NAME,
                f"pid {pid} runs but {url}/health does not answer",
                f"see {paths.daemon_log}; then `memproxy down && memproxy up`",
            )
        ]
    results = [ok(NAME, f"pid {pid} answers /health at {url}")]
    version = str(data.get("version", "?"))
    if version == __version__:
        results.append(ok("daemon version", f"{version}, same as the CLI"))
    else:
        results.append(
            warn(
                "daemon version",
                f"the daemon runs {version}, the CLI is {__version__}",
                "`memproxy down && memproxy up` to run the installed version",
            )
        )
    return results
