"""LiteLLM's proxy as the peer in the benchmark: its own venv, the lock's version, no database.

The venv lives under the user's cache dir (`$XDG_CACHE_HOME` or ~/.cache, then
memproxy-bench/litellm-VERSION) and is created with uv on first use: `uv venv`, then
`uv pip install 'litellm[proxy]==VERSION'`, where VERSION is the one uv.lock pins. The proxy
is configured for the benchmark's model and fake upstream, with a master key and no database,
and runs with one worker on 127.0.0.1. CPU and RSS are read from /proc for its whole process tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import load
import psutil
import yaml
from load import MODEL, Target
from procs import free_port

ROOT = Path(__file__).resolve().parent.parent
# The benchmark client sends this key to every target; the peer takes it as its master key.
MASTER_KEY = "sk-bench-not-a-real-key"


def locked_version(package: str = "litellm") -> str:
    """The version of `package` that uv.lock pins."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    for entry in lock.get("package", []):
        if entry.get("name") == package:
            return str(entry["version"])
    raise RuntimeError(f"uv.lock pins no {package}")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memproxy-bench"


def _uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    if local.exists():
        return str(local)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("the LiteLLM peer needs uv (scripts/bootstrap installs .tools/bin/uv)")
    return found


def ensure_venv(version: str) -> Path:
    """The peer's venv with `litellm[proxy]==version`, installed first if missing."""
    venv = cache_dir() / f"litellm-{version}"
    done = venv / ".installed"
    if done.exists():
        return venv
    print(f"installing litellm[proxy]=={version} into {venv} (first run only) ...", flush=True)
    uv = _uv()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    shutil.rmtree(venv, ignore_errors=True)  # an install cut short leaves no marker
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    py = str(venv / "bin" / "python")
    spec = f"litellm[proxy]=={version}"
    subprocess.run([uv, "pip", "install", "-q", "--python", py, spec], check=True, env=env)
    done.write_text(spec + "\n", encoding="utf-8")
    return venv


def write_config(home: Path, upstream: str) -> Path:
    raw = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": f"{upstream}/v1",
                    "api_key": "sk-upstream-not-a-real-key",
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }
    path = home / "litellm.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


async def first_200(url: str, deadline: float) -> None:
    """Poll `url` with a small chat completion until it answers 200."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the LiteLLM proxy did not answer 200 at {url}")
            await asyncio.sleep(0.05)


class LiteLLMPeer:
    """LiteLLM's proxy in front of `upstream`; `start_s` is spawn to its first 200 answer."""

    def __init__(self, venv: Path, home: Path, upstream: str) -> None:
        self.venv, self.home, self.upstream = venv, home, upstream
        home.mkdir(parents=True, exist_ok=True)
        self.config = write_config(home, upstream)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, wait_s: float = 180.0) -> None:
        started = time.monotonic()
        self._spawn()
        try:
            await first_200(f"{self.url}/v1/chat/completions", started + wait_s)
        except BaseException:
            self.close()
            raise
        self.start_s = time.monotonic() - started

    def _spawn(self) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "LITELLM_"))}
        env.pop("VIRTUAL_ENV", None)
        env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", NO_COLOR="1")
        args = [str(self.venv / "bin" / "litellm"), "--config", str(self.config)]
        args += ["--host", "127.0.0.1", "--port", str(self.port), "--num_workers", "1"]
        with (self.home / "litellm.log").open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, cwd=self.home, env=env
            )

    def _tree(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        """User + system CPU of the proxy's whole process tree."""
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_mb(self) -> float:
        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / (1024 * 1024)

    def wait_settled(self, timeout: float = 60.0) -> None:
        """Until the tree used under 20 ms of CPU in each of two consecutive half seconds."""
        started, quiet, last = time.monotonic(), 0, self.cpu_s()
        while quiet < 2 and time.monotonic() - started < timeout:
            time.sleep(0.5)
            now = self.cpu_s()
            quiet = quiet + 1 if now - last < 0.02 else 0
            last = now

    def close(self) -> None:
        if self.proc is None:
            return
        tree = self._tree()
        for p in reversed(tree):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        _, alive = psutil.wait_procs(tree, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.proc.wait()
        self.proc = None


async def measure(
    root: Path,
    upstream: str,
    direct: Target,
    latency_n: int,
    warmup: int,
    seconds: float,
    starts: int,
) -> dict[str, Any]:
    """The peer's figures: start-up, added latency against `direct`, c16 rate and CPU, RSS."""
    version = locked_version()
    venv = ensure_venv(version)
    start_times = []
    for i in range(starts - 1):  # extra cold starts, for the start-up figure only
        extra = LiteLLMPeer(venv, root / f"litellm-start-{i}", upstream)
        await extra.start()
        start_times.append(extra.start_s)
        extra.close()
    peer = LiteLLMPeer(venv, root / "litellm", upstream)
    await peer.start()
    start_times.append(peer.start_s)
    try:
        await asyncio.to_thread(peer.wait_settled)
        out: dict[str, Any] = {
            "name": "LiteLLM proxy",
            "version": version,
            "workers": 1,
            "start_s": sorted(start_times),
            "start_median_s": round(statistics.median(start_times), 3),
            "idle_rss_mb": round(peer.rss_mb(), 1),
        }
        target = Target(f"{peer.url}/v1/chat/completions", load.headers_for(None))
        out["latency"] = {}
        for label, stream in (("non_stream", False), ("stream_ttft", True)):
            d, p = await load.sequential_blocks((direct, target), stream, latency_n, warmup)
            out["latency"][label] = {
                "direct": d.summary(),
                "peer": p.summary(),
                "added_p50_ms": round(p.p50 - d.p50, 3),
                "added_p99_ms": round(p.p99 - d.p99, 3),
            }
        out["throughput"] = {}
        for key, stream in (("c16", False), ("c16_stream", True)):
            direct_rps, _ = await load.throughput_counted(direct, stream, 16, seconds)
            cpu0 = peer.cpu_s()
            rps, done = await load.throughput_counted(target, stream, 16, seconds)
            cpu_ms = (peer.cpu_s() - cpu0) * 1000 / done if done else None
            out["throughput"][key] = {
                "direct_rps": round(direct_rps, 1),
                "peer_rps": round(rps, 1),
                "share": round(rps / direct_rps, 4),
                "peer_cpu_ms": None if cpu_ms is None else round(cpu_ms, 3),
            }
        out["rss_after_load_mb"] = round(peer.rss_mb(), 1)
        return out
    finally:
        peer.close()
