"""Packaging: one version, `python -m memproxy_cli`, and a wheel that installs a working CLI."""

from __future__ import annotations

import re
import site
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import memproxy_cli

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "bin" / "uv"


def test_version_comes_from_the_package() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", memproxy_cli.__version__)
    assert version("memproxy") == memproxy_cli.__version__
    assert "version" not in _project_table()


def _project_table() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return text.split("[project]", 1)[1].split("\n[", 1)[0].replace('dynamic = ["version"]', "")


def test_python_dash_m_prints_the_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "memproxy_cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"memproxy {memproxy_cli.__version__}"


def test_python_dash_m_help_names_the_program_memproxy() -> None:
    proc = subprocess.run([sys.executable, "-m", "memproxy_cli", "--help"], capture_output=True)
    assert proc.returncode == 0
    assert b"Usage: memproxy " in proc.stdout


@pytest.mark.slow
def test_wheel_installs_a_working_memproxy(tmp_path: Path) -> None:
    if not UV.exists():
        pytest.fail("uv is missing: run scripts/bootstrap")
    dist = tmp_path / "dist"
    subprocess.run(
        [UV, "build", "--wheel", "--out-dir", dist, ROOT], check=True, capture_output=True
    )
    (wheel,) = dist.glob("memproxy-*.whl")
    assert wheel.name.startswith(f"memproxy-{memproxy_cli.__version__}-")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [UV, "pip", "install", "--offline", "--no-deps", "--python", python, wheel],
        check=True,
        capture_output=True,
    )
    # Dependencies come from this venv (appended after the new venv's own site-packages,
    # without this venv's .pth files, so the source tree stays out of sys.path).
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(own, "deps-from-test-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run = {"capture_output": True, "text": True, "cwd": tmp_path}  # cwd: not the source tree
    proc = subprocess.run([venv / "bin" / "memproxy", "--version"], **run)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"memproxy {memproxy_cli.__version__}"
    where = subprocess.run(
        [python, "-c", "import memproxy_cli; print(memproxy_cli.__file__)"], check=True, **run
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), f"imported {where}, not the installed wheel"
