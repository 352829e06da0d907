"""Processes the benchmark drives: the fake upstream and the real daemon via `memproxy up`."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScriptServer:
    """A server script of benchmarks/ in its own process; it prints `listening PORT`."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *args, "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            self.close()
            raise RuntimeError(f"{script} did not start: {line!r}")
        self.port = int(line[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = psutil.Process(self.proc.pid)

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return round(float(self.process.memory_info().rss) / (1024 * 1024), 1)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class FakeUpstream(ScriptServer):
    """benchmarks/fake_upstream.py: a fixed JSON answer, or 20 SSE chunks."""

    def __init__(self) -> None:
        super().__init__("fake_upstream.py")


class BareRelay(ScriptServer):
    """benchmarks/bare_relay.py in front of `upstream`: the cost floor of an aiohttp relay."""

    def __init__(self, upstream: str) -> None:
        super().__init__("bare_relay.py", upstream)


def memproxy_cmd() -> list[str]:
    script = BIN / "memproxy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "memproxy_cli"]


def cli(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEMPROXY_HOME": str(home), "NO_COLOR": "1"}
    result = subprocess.run(
        [*memproxy_cmd(), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"memproxy {' '.join(args)} failed: {result.stderr[-2000:]}")
    return result


def write_config(home: Path, upstream: str, memory: dict[str, Any]) -> Path:
    raw = {"upstreams": {"openai": upstream, "anthropic": upstream}, "memory": memory}
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


class Daemon:
    """`memproxy up` in a fresh MEMPROXY_HOME; `up_s` is the wall time until it answered."""

    def __init__(self, home: Path, upstream: str, memory: dict[str, Any]) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.config = write_config(home, upstream, memory)
        self.port = free_port()
        started = time.perf_counter()
        cli(home, "up", f"--port={self.port}", f"--config={self.config}")
        self.up_s = time.perf_counter() - started
        status = json.loads(cli(home, "status", "--json").stdout)
        self.pid = int(status["pid"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = psutil.Process(self.pid)

    def rss_mb(self) -> float:
        return float(self.process.memory_info().rss) / (1024 * 1024)

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def wait_settled(self, timeout: float = 120.0) -> float:
        """Wait until the daemon's background start-up work (the LiteLLM import) has finished.

        Settled means it used under 20 ms of CPU in each of two consecutive half seconds.
        Returns the seconds waited.
        """
        started = time.monotonic()
        quiet, last = 0, self.cpu_s()
        while quiet < 2:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the daemon was still busy after {timeout:.0f} s")
            time.sleep(0.5)
            now = self.cpu_s()
            quiet = quiet + 1 if now - last < 0.02 else 0
            last = now
        return time.monotonic() - started

    def down(self, timeout: float = 30.0) -> None:
        """Stop the daemon and wait until its process is gone.

        `memproxy down` needs the home it was started with; should that fail (the home is
        gone, the control socket does not answer), the daemon's own pid gets SIGTERM, then
        SIGKILL, so no run leaves a daemon behind.
        """
        if self.home.exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                cli(self.home, "down", check=False)
        try:
            self.process.wait(timeout if self.home.exists() else 0)
            return
        except psutil.TimeoutExpired:
            pass
        except psutil.NoSuchProcess:
            return
        try:
            self.process.terminate()
            self.process.wait(timeout)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
