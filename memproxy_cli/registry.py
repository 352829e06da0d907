"""Port registry: each project keeps one stable local port, handed out under a file lock."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from memproxy_cli.names import PROJECT_NAME, PROJECT_RULE

if TYPE_CHECKING:
    from collections.abc import Iterator

    from memproxy_cli.paths import Paths

REGISTRY_VERSION = 1
DEFAULT_PORT_RANGE = (8765, 8964)
LOCK_TIMEOUT_S = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

StateName = Literal["listening", "not listening", "taken"]


class RegistryError(Exception):
    """The registry cannot do what was asked; the message says why and what to do."""


class InvalidProjectName(RegistryError):
    """A project name outside `names.PROJECT_NAME` (no `.`, `..` or leading `-`)."""


class PortUnavailable(RegistryError):
    """An explicit port is registered to another project or bound by another program."""


class RegistryFull(RegistryError):
    """No free port is left in the configured range."""


class RegistryCorrupt(RegistryError):
    """The registry file exists but cannot be read; it is never overwritten silently."""


@dataclass(frozen=True)
class Entry:
    project: str
    port: int
    created_at: str


@dataclass(frozen=True)
class Assignment:
    project: str
    port: int
    created: bool
    skipped: list[tuple[int, str]]


@dataclass(frozen=True)
class PortState:
    port: int
    state: StateName
    pid: int | None = None
    process: str | None = None

    @property
    def label(self) -> str:
        if self.state != "taken":
            return self.state
        if self.pid is None:
            return "taken by an unknown process"
        return f"taken by another process ({self.pid} {self.process or '?'})"


def validate_project(name: str) -> str:
    """Return the name, or raise InvalidProjectName explaining the allowed characters."""
    if not PROJECT_NAME.fullmatch(name):
        raise InvalidProjectName(f"invalid project name {name!r}: use {PROJECT_RULE}")
    return name


def default_project_name(cwd: Path) -> str | None:
    """The name of the git work tree holding cwd, sanitized to a valid project name."""
    start = cwd.resolve()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            name = _UNSAFE.sub("-", directory.name).lstrip("-.").rstrip("-")[:64]
            return name if PROJECT_NAME.fullmatch(name) else None
    return None


def bind_error(port: int) -> OSError | None:
    """Try to bind 127.0.0.1:port (no SO_REUSEADDR); the error when something else holds it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        return exc
    finally:
        sock.close()
    return None


def port_holders() -> dict[int, int | None] | None:
    """Listening TCP port -> pid (None when hidden); None when the OS refuses to tell."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    holders: dict[int, int | None] = {}
    # listeners first, so a port's holder is the process that listens on it when there is one
    for conn in sorted(conns, key=lambda c: c.status != psutil.CONN_LISTEN):
        if not conn.laddr or conn.status == psutil.CONN_TIME_WAIT:
            continue
        if holders.get(conn.laddr.port) is None:
            holders[conn.laddr.port] = conn.pid
    return holders


def process_name(pid: int) -> str | None:
    import psutil

    try:
        return psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _daemon_listens(daemon_pid: int, port: int) -> bool:
    import psutil

    try:
        conns = psutil.Process(daemon_pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)


def port_state(
    port: int, daemon_pid: int | None, holders: dict[int, int | None] | None = None
) -> PortState:
    """Who holds the port: the daemon, nobody, or another (named when visible) process."""
    return port_states([port], daemon_pid, holders)[0]


def port_states(
    ports: list[int], daemon_pid: int | None, holders: dict[int, int | None] | None = None
) -> list[PortState]:
    """`port_state` of many ports, scanning the system's sockets at most once."""
    states: list[PortState] = []
    for port in ports:
        if bind_error(port) is None:
            states.append(PortState(port, "not listening"))
            continue
        if daemon_pid is not None and _daemon_listens(daemon_pid, port):
            states.append(PortState(port, "listening", daemon_pid, process_name(daemon_pid)))
            continue
        holders = holders if holders is not None else port_holders() or {}
        pid = holders.get(port)
        name = process_name(pid) if pid is not None else None
        ours = pid is not None and pid == daemon_pid
        states.append(PortState(port, "listening" if ours else "taken", pid, name))
    return states


def _holder_text(port: int, holders: dict[int, int | None] | None) -> str:
    pid = (holders or {}).get(port)
    if pid is None:
        return "in use by an unknown process"
    return f"in use by pid {pid} ({process_name(pid) or '?'})"


def read_pidfile(path: Path) -> int | None:
    """The daemon pid from its pidfile, or None when missing or unreadable."""
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


class PortRegistry:
    """The JSON file `paths.registry`; every change happens under `paths.registry_lock`."""

    def __init__(
        self,
        paths: Paths,
        port_range: tuple[int, int] = DEFAULT_PORT_RANGE,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ) -> None:
        low, high = port_range
        if not 1 <= low <= high <= 65535:
            raise RegistryError(f"invalid port range {low}-{high}")
        self.paths = paths
        self.port_range = port_range
        self.lock_timeout_s = lock_timeout_s

    # reads: the file is replaced atomically, so readers need no lock

    def entries(self) -> list[Entry]:
        projects = self._load()
        return sorted(
            (Entry(name, rec["port"], rec["created_at"]) for name, rec in projects.items()),
            key=lambda e: (e.port, e.project),
        )

    def get(self, project: str) -> int | None:
        rec = self._load().get(project)
        return None if rec is None else int(rec["port"])

    def project_for_port(self, port: int) -> str | None:
        return next((e.project for e in self.entries() if e.port == port), None)

    def port_state(self, port: int, daemon_pid: int | None) -> PortState:
        return port_state(port, daemon_pid)

    # writes

    def assign(self, project: str, port: int | None = None) -> Assignment:
        """The project's port: its existing one, the explicit one, or the lowest free one."""
        validate_project(project)
        with self._locked():
            projects = self._load()
            existing = projects.get(project)
            if existing is not None:
                if port is not None and port != existing["port"]:
                    raise PortUnavailable(
                        f"project {project!r} already has port {existing['port']}; "
                        f"detach it first to move it to {port}"
                    )
                return Assignment(project, int(existing["port"]), False, [])
            skipped: list[tuple[int, str]] = []
            if port is None:
                chosen = self._pick_free(projects, skipped)
            else:
                chosen = self._check_explicit(projects, port)
            projects[project] = {"port": chosen, "created_at": _now()}
            self._save(projects)
        return Assignment(project, chosen, True, skipped)

    def release(self, project: str) -> bool:
        """Forget the project's port; False when it had none."""
        with self._locked():
            projects = self._load()
            if projects.pop(project, None) is None:
                return False
            self._save(projects)
        return True

    # internals

    def _pick_free(self, projects: dict[str, Any], skipped: list[tuple[int, str]]) -> int:
        registered = {int(rec["port"]) for rec in projects.values()}
        low, high = self.port_range
        holders: dict[int, int | None] | None = None
        for candidate in range(low, high + 1):
            if candidate in registered:
                continue
            if bind_error(candidate) is None:
                return candidate
            holders = holders if holders is not None else port_holders() or {}
            skipped.append((candidate, _holder_text(candidate, holders)))
        raise RegistryFull(
            f"no free port in {low}-{high}: {len(registered)} registered, "
            f"{len(skipped)} held by other programs; widen listeners.port_range_*"
        )

    def _check_explicit(self, projects: dict[str, Any], port: int) -> int:
        if not 1024 <= port <= 65535:
            raise PortUnavailable(f"port {port} is not between 1024 and 65535")
        owner = next((name for name, rec in projects.items() if rec["port"] == port), None)
        if owner is not None:
            raise PortUnavailable(f"port {port} is already registered to project {owner!r}")
        error = bind_error(port)
        if error is not None:
            holder = _holder_text(port, port_holders())
            raise PortUnavailable(f"port {port} is {holder} ({error.strerror})")
        return port

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        self.paths.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = FileLock(str(self.paths.registry_lock), timeout=self.lock_timeout_s, mode=0o600)
        try:
            lock.acquire()
        except Timeout:
            raise RegistryError(
                f"the port registry is locked by another memproxy process "
                f"(waited {self.lock_timeout_s:g} s for {self.paths.registry_lock})"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _load(self) -> dict[str, Any]:
        path = self.paths.registry
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RegistryError(f"cannot read the port registry {path}: {exc.strerror}") from exc
        return _parse(text, path)

    def _save(self, projects: dict[str, Any]) -> None:
        path = self.paths.registry
        body = json.dumps({"version": REGISTRY_VERSION, "projects": projects}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ports-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _parse(text: str, path: Path) -> dict[str, Any]:
    fix = "fix or remove it (memproxy never overwrites an unreadable registry)"
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise RegistryCorrupt(
            f"the port registry {path} is not valid JSON ({exc}); {fix}"
        ) from None
    except RecursionError:
        raise RegistryCorrupt(f"the port registry {path} is nested too deeply; {fix}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("projects"), dict):
        raise RegistryCorrupt(f"the port registry {path} has no 'projects' mapping; {fix}")
    version = doc.get("version")
    if version != REGISTRY_VERSION:
        raise RegistryCorrupt(
            f"the port registry {path} has version {version!r}, this memproxy reads "
            f"version {REGISTRY_VERSION}; upgrade memproxy or {fix}"
        )
    projects: dict[str, Any] = doc["projects"]
    for name, rec in projects.items():
        if not PROJECT_NAME.fullmatch(name):
            raise RegistryCorrupt(f"the port registry {path}: {name[:80]!r} is no project; {fix}")
        if not (isinstance(rec, dict) and type(rec.get("port")) is int):
            raise RegistryCorrupt(f"the port registry {path}: entry {name!r} has no port; {fix}")
        if not 1 <= rec["port"] <= 65535:
            raise RegistryCorrupt(
                f"the port registry {path}: entry {name!r} has port {rec['port']}, "
                f"not between 1 and 65535; {fix}"
            )
        if not isinstance(rec.get("created_at", ""), str):
            raise RegistryCorrupt(f"the port registry {path}: entry {name!r} is malformed; {fix}")
        rec.setdefault("created_at", "")
    return projects


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
