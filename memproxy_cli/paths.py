"""Every file location memproxy uses, from platformdirs, all under MEMPROXY_HOME when set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "memproxy"


@dataclass(frozen=True)
class Paths:
    """Directories and files of one memproxy installation."""

    config_dir: Path
    data_dir: Path
    state_dir: Path
    log_dir: Path

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

    def ensure(self) -> Paths:
        for d in (self.config_dir, self.data_dir, self.state_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def get_paths() -> Paths:
    """Resolve locations now (MEMPROXY_HOME is read on every call so tests can move it)."""
    home = os.environ.get("MEMPROXY_HOME")
    if home:
        root = Path(home).expanduser()
        return Paths(root / "config", root / "data", root / "state", root / "logs")
    import platformdirs

    return Paths(
        Path(platformdirs.user_config_dir(APP_NAME)),
        Path(platformdirs.user_data_dir(APP_NAME)),
        Path(platformdirs.user_state_dir(APP_NAME)),
        Path(platformdirs.user_log_dir(APP_NAME)),
    )
