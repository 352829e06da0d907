"""Start time of everyday CLI commands in fresh processes, and which heavy modules they import."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import memproxy_cmd

COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("ports",), ("status",), ("logs", "-n", "20"))
HEAVY = ("litellm", "aiohttp", "sqlalchemy", "sqlmodel", "pydantic", "httpx")

# Runs the CLI in-process, then reports which top-level packages ended up in sys.modules.
_WRAPPER = """
import json, runpy, sys
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["memproxy", *args]
code = 0
try:
    runpy.run_module("memproxy_cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
tops = sorted({m.split(".")[0] for m in sys.modules})
with open(out, "w") as f:
    json.dump({"modules": tops, "count": len(sys.modules), "code": code}, f)
"""


def time_command(home: Path, args: tuple[str, ...], repeats: int) -> dict[str, object]:
    env = {**os.environ, "MEMPROXY_HOME": str(home), "NO_COLOR": "1"}
    times = []
    code = 0
    for _ in range(repeats):
        started = time.perf_counter()
        result = subprocess.run(
            [*memproxy_cmd(), *args], capture_output=True, env=env, timeout=60, check=False
        )
        times.append(time.perf_counter() - started)
        code = result.returncode
    imports = _imports(env, args)
    heavy = [m for m in HEAVY if m in imports["modules"]]
    return {
        "command": " ".join(args),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "best_ms": round(min(times) * 1000, 1),
        "exit_code": code,
        "modules": imports["count"],
        "heavy_imports": heavy,
        "litellm_imported": "litellm" in imports["modules"],
    }


def _imports(env: dict[str, str], args: tuple[str, ...]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "modules.json"
        subprocess.run(
            [sys.executable, "-c", _WRAPPER, str(out), *args],
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        data: dict[str, Any] = json.loads(out.read_text())
        return data


def measure(home: Path, repeats: int) -> list[dict[str, object]]:
    return [time_command(home, args, repeats) for args in COMMANDS]
