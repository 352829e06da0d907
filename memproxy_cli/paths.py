"""Every file location memproxy uses, from platformdirs, all under MEMPROXY_HOME when set."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "memproxy"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class UnsafeHome(Exception):
    """A memproxy directory belongs to another user; keys and memories must not go there."""


@dataclass(frozen=True)
class Paths:
    """Directories and files of one memproxy installation."""

    config_dir: Path
    data_dir: Path
    state_dir: Path
    log_dir: Path
    home: Path | None = None  # MEMPROXY_HOME, when set

    @property
    def default_config(self) -> Path:
        return self.config_dir / "config.yaml"

    @property
    def pidfile(self) -> Path:
        return self.state_dir / "memproxy.pid"

    @property
    def control_socket(self) -> Path:
        return self.state_dir / "control.sock"

    @property
    def daemon_info(self) -> Path:
        """JSON written by the daemon once it serves: pid, url, started_at, version."""
        return self.state_dir / "daemon.json"

    @property
    def registry(self) -> Path:
        return self.state_dir / "ports.json"

    @property
    def registry_lock(self) -> Path:
        return self.state_dir / "ports.lock"

    @property
    def cookie_dir(self) -> Path:
        return self.state_dir / "cookies"

    @property
    def daemon_log(self) -> Path:
        return self.log_dir / "memproxy.log"

    @property
    def spend_db(self) -> Path:
        return self.data_dir / "spend.sqlite3"

    @property
    def spill_file(self) -> Path:
        return self.data_dir / "spend-spill.jsonl"

    @property
    def memory_db(self) -> Path:
        return self.data_dir / "memory.sqlite3"

    def local_memory(self, configured: str | None) -> Path:
        """The local memory store: `memory.local.path` (with ~ expanded) or the default."""
        return Path(configured).expanduser() if configured else self.memory_db

    @property
    def private_dirs(self) -> tuple[Path, ...]:
        """The directories only their owner may enter (the config directory is the user's)."""
        return (self.data_dir, self.state_dir, self.log_dir, self.cookie_dir)

    def ensure(self) -> Paths:
        """Create the directories 0700 (and make existing ones 0700); UnsafeHome when one of
        them, or MEMPROXY_HOME, belongs to another user."""
        if self.home is not None:
            if not self.home.exists():
                self.home.mkdir(parents=True, mode=PRIVATE_DIR)
            _check_owner(self.home, "MEMPROXY_HOME")
        for d in (self.config_dir, *self.private_dirs):
            d.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
            _check_owner(d, "the memproxy directory")
            if stat.S_IMODE(d.stat().st_mode) != PRIVATE_DIR:
                d.chmod(PRIVATE_DIR)
        return self

    def tighten(self) -> None:
        """Make every file already in the private directories 0600 (symlinks left alone)."""
        for d in self.private_dirs:
            for entry in os.scandir(d):
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISREG(mode) and stat.S_IMODE(mode) != PRIVATE_FILE:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    try:
                        os.fchmod(fd, PRIVATE_FILE)
                    finally:
                        os.close(fd)


def _check_owner(path: Path, what: str) -> None:
    owner = path.stat().st_uid
    if owner != os.getuid():
        raise UnsafeHome(
            f"{what} {path} belongs to another user (uid {owner}, you are uid {os.getuid()}); "
            "memproxy keeps keys, memories and logs there, so it refuses to use it: "
            "point MEMPROXY_HOME at a directory of your own"
        )


def open_private(path: Path | str, flags: int) -> int:
    """os.open for a file of ours: never through a symlink, created 0600, made 0600 if not."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def get_paths() -> Paths:
    """Resolve locations now (MEMPROXY_HOME is read on every call so tests can move it)."""
    home = os.environ.get("MEMPROXY_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(root / "config", root / "data", root / "state", root / "logs", root)
    import platformdirs

    return Paths(
        Path(platformdirs.user_config_dir(APP_NAME)),
        Path(platformdirs.user_data_dir(APP_NAME)),
        Path(platformdirs.user_state_dir(APP_NAME)),
        Path(platformdirs.user_log_dir(APP_NAME)),
    )
