"""PortRegistry against a real file, a real lock and real sockets on loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from memproxy_cli.paths import get_paths
from memproxy_cli.registry import (
    InvalidProjectName,
    PortRegistry,
    PortUnavailable,
    RegistryCorrupt,
    RegistryError,
    RegistryFull,
    default_project_name,
    port_state,
)


def listening_socket() -> socket.socket:
    """A socket this test process holds on a free loopback port (a 'foreign' program)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.fixture
def held() -> Iterator[socket.socket]:
    sock = listening_socket()
    assert sock.getsockname()[1] < 65000
    yield sock
    sock.close()


def registry_from(port: int, width: int = 40) -> PortRegistry:
    return PortRegistry(get_paths(), (port, port + width))


def test_assign_is_idempotent_and_persists(held: socket.socket) -> None:
    base = held.getsockname()[1]
    first = registry_from(base).assign("app")
    again = registry_from(base).assign("app")
    assert first.created and not again.created
    assert again.port == first.port
    assert registry_from(base).get("app") == first.port
    assert [(e.project, e.port) for e in registry_from(base).entries()] == [("app", first.port)]


def test_distinct_projects_get_distinct_ports(held: socket.socket) -> None:
    registry = registry_from(held.getsockname()[1])
    ports = {registry.assign(f"p{i}").port for i in range(5)}
    assert len(ports) == 5


def test_foreign_port_is_skipped_and_reported(held: socket.socket) -> None:
    base = held.getsockname()[1]
    result = registry_from(base).assign("app")
    assert result.port != base
    assert base < result.port <= base + 40
    reasons = dict(result.skipped)
    assert base in reasons
    assert f"pid {os.getpid()}" in reasons[base]


def test_explicit_port_held_by_a_foreign_process_names_it(held: socket.socket) -> None:
    base = held.getsockname()[1]
    with pytest.raises(PortUnavailable, match=f"pid {os.getpid()}"):
        registry_from(base).assign("app", port=base)
    assert registry_from(base).get("app") is None


def test_explicit_port_of_another_project_names_it(held: socket.socket) -> None:
    registry = registry_from(held.getsockname()[1])
    taken = registry.assign("first").port
    with pytest.raises(PortUnavailable, match="'first'"):
        registry.assign("second", port=taken)


def test_explicit_port_cannot_move_an_existing_project(held: socket.socket) -> None:
    registry = registry_from(held.getsockname()[1])
    port = registry.assign("app").port
    assert registry.assign("app", port=port).port == port
    with pytest.raises(PortUnavailable, match="already has port"):
        registry.assign("app", port=port + 1)


def test_explicit_privileged_port_is_refused(held: socket.socket) -> None:
    with pytest.raises(PortUnavailable, match="1024"):
        registry_from(held.getsockname()[1]).assign("app", port=80)


def test_release_frees_the_port(held: socket.socket) -> None:
    registry = registry_from(held.getsockname()[1])
    port = registry.assign("app").port
    assert registry.project_for_port(port) == "app"
    assert registry.release("app") is True
    assert registry.get("app") is None
    assert registry.project_for_port(port) is None
    assert registry.release("app") is False
    assert registry.assign("other").port == port


def test_full_range_is_an_error(held: socket.socket) -> None:
    base = held.getsockname()[1]
    with pytest.raises(RegistryFull, match="no free port"):
        PortRegistry(get_paths(), (base, base)).assign("app")


CORRUPT = ["{not json", "[]", '{"version": 1}', '{"version": 9, "projects": {}}']


@pytest.mark.parametrize("text", CORRUPT)
def test_corrupt_file_is_an_error_and_kept(text: str, held: socket.socket) -> None:
    paths = get_paths().ensure()
    paths.registry.write_text(text, encoding="utf-8")
    registry = registry_from(held.getsockname()[1])
    with pytest.raises(RegistryCorrupt, match=str(paths.registry)):
        registry.assign("app")
    with pytest.raises(RegistryCorrupt):
        registry.entries()
    assert paths.registry.read_text(encoding="utf-8") == text


def test_entry_without_a_port_is_corrupt(held: socket.socket) -> None:
    paths = get_paths().ensure()
    paths.registry.write_text('{"version": 1, "projects": {"a": {"port": "x"}}}', "utf-8")
    with pytest.raises(RegistryCorrupt, match="'a'"):
        registry_from(held.getsockname()[1]).get("a")


def test_writes_leave_only_the_registry_and_lock(held: socket.socket) -> None:
    registry = registry_from(held.getsockname()[1])
    registry.assign("a")
    registry.assign("b")
    registry.release("a")
    names = sorted(p.name for p in get_paths().state_dir.iterdir())
    assert names == ["ports.json", "ports.lock"]


def test_lock_timeout_is_a_clear_error(held: socket.socket) -> None:
    paths = get_paths().ensure()
    registry = PortRegistry(paths, (held.getsockname()[1], 65000), lock_timeout_s=0.2)
    with FileLock(str(paths.registry_lock)), pytest.raises(RegistryError, match="locked"):
        registry.assign("app")
    assert registry.get("app") is None


@pytest.mark.parametrize(
    "name", ["", "a b", "x" * 65, "../etc", "naïve", "a/b", ".", "..", "-rf", "--help", ".hidden"]
)
def test_invalid_project_names(name: str) -> None:
    with pytest.raises(InvalidProjectName, match="letters, digits"):
        PortRegistry(get_paths()).assign(name)


@pytest.mark.parametrize("name", ["a", "My_App-2.0", "x" * 64])
def test_valid_project_names(name: str, held: socket.socket) -> None:
    assert registry_from(held.getsockname()[1]).assign(name).project == name


def test_invalid_range_is_refused() -> None:
    with pytest.raises(RegistryError, match="range"):
        PortRegistry(get_paths(), (9000, 8000))


def test_port_state_free_taken_and_listening(held: socket.socket) -> None:
    port = held.getsockname()[1]
    taken = port_state(port, None)
    assert (taken.state, taken.pid) == ("taken", os.getpid())
    assert taken.process and str(os.getpid()) in taken.label
    mine = port_state(port, os.getpid())
    assert (mine.state, mine.pid, mine.label) == ("listening", os.getpid(), "listening")
    held.close()
    free = port_state(port, os.getpid())
    assert (free.state, free.pid) == ("not listening", None)


def test_default_project_name_from_git_dir(tmp_path: Path) -> None:
    repo = tmp_path / "my repo!"
    (repo / ".git").mkdir(parents=True)
    nested = repo / "src" / "pkg"
    nested.mkdir(parents=True)
    assert default_project_name(nested) == "my-repo"
    assert default_project_name(repo) == "my-repo"


def test_default_project_name_from_worktree_git_file(tmp_path: Path) -> None:
    tree = tmp_path / "feature.tree"
    tree.mkdir()
    (tree / ".git").write_text("gitdir: /elsewhere\n", encoding="utf-8")
    assert default_project_name(tree) == "feature.tree"


def test_default_project_name_outside_git(tmp_path: Path) -> None:
    assert default_project_name(tmp_path) is None


def test_hidden_socket_table_falls_back_to_unknown_process(
    held: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psutil

    def denied(kind: str = "inet") -> list[object]:
        raise psutil.AccessDenied()

    monkeypatch.setattr(psutil, "net_connections", denied)
    base = held.getsockname()[1]
    state = port_state(base, None)
    assert (state.state, state.pid, state.label) == ("taken", None, "taken by an unknown process")
    result = registry_from(base).assign("app")
    assert dict(result.skipped)[base] == "in use by an unknown process"
