"""`benchmarks/run.py --quick` runs end to end against the real daemon and prints every section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = (
    "== 1. Added latency",
    "== 2. Throughput",
    "== 3. Local memory on",
    "== 4. Daemon: RSS and start",
    "== 5. CLI start",
)


@pytest.mark.timeout(600)
def test_quick_benchmark_prints_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    positions = [result.stdout.find(title) for title in SECTIONS]
    assert all(p >= 0 for p in positions), result.stdout
    assert positions == sorted(positions), "sections out of order"
    assert "no CLI command imported litellm" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["latency"]["non_stream"]["gateway"]["n"] > 0
    assert figures["latency"]["stream_ttft"]["gateway"]["n"] > 0
    assert set(figures["throughput"]) >= {"c16", "c64"}
    c16 = figures["throughput"]["c16"]
    assert c16["bare_rps"] > 0 and c16["gateway_rps"] > 0
    assert c16["gateway_cpu_ms"] > 0 and c16["bare_cpu_ms"] > 0
    assert [run["size"] for run in figures["memory"]] == [300]
    assert figures["memory"][0]["injected"] not in (None, "0")
    assert len(figures["daemon"]["soak"]["samples"]) == 5
    assert {c["command"] for c in figures["cli"]} == {"--help", "ports", "status", "logs -n 20"}


@pytest.mark.timeout(300)
def test_capture_benchmark_meets_its_targets(tmp_path: Path) -> None:
    out = tmp_path / "capture.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "capture.py"),
            "--turns",
            "12",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert {f["client"] for f in figures} == {
        "claude-code",
        "opencode",
        "aider",
        "codex",
        "gemini-cli",
    }
    for f in figures:
        assert f["stored_with_final_answer"] == f["human_turns"] == 12, f
        assert f["stored"] == 12 and f["chrome_or_subagent_items"] == 0, f
        assert f["requests"] >= 12 and f["request_path_cpu_us_per_request"] > 0
        assert f["inline_capture_cpu_us_per_request"] > 0


@pytest.mark.timeout(300)
def test_recall_wall_traces_every_step_of_the_daemons_recalls(tmp_path: Path) -> None:
    out = tmp_path / "wall.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "recall_wall.py"),
            *("--size", "300", "--calls", "20", "--warmup", "5", "--rounds", "1"),
            *("--variant", "cur=", "--variant", "si=:MEMPROXY_SWITCH_INTERVAL=0.001"),
            *("--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("| added (client) |", "| reader: CPU |", "| reader: top CPU |", "| rank"):
        assert row in result.stdout.replace("reader: rank", "rank"), result.stdout
    figures = json.loads(out.read_text())
    for name in ("cur", "si"):
        variant = figures["variants"][name]
        assert len(variant["samples_ms"]) == 20
        assert len(variant["recalls"]) == 20  # one traced recall a measured call
        assert all("call1" in r and "top0" in r for r in variant["recalls"])
