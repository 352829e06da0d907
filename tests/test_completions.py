"""Shell completions: committed scripts match the generator; bash really completes commands and
project names through the installed `memproxy`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from memproxy_cli.cli.completions_cmds import complete_project, completion_script
from memproxy_cli.paths import get_paths
from memproxy_cli.registry import PortRegistry, RegistryError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_script_is_fresh(shell: str) -> None:
    committed = (ROOT / "completions" / f"memproxy.{shell}").read_text(encoding="utf-8")
    assert committed == completion_script(shell) + "\n", "stale: run `make completions`"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_command_prints_the_script(shell: str) -> None:
    proc = subprocess.run(
        [BIN / "memproxy", "completions", shell], capture_output=True, text=True, check=True
    )
    assert proc.stdout == completion_script(shell) + "\n"
    assert "_MEMPROXY_COMPLETE" in proc.stdout


def test_unknown_shell_is_a_usage_error() -> None:
    proc = subprocess.run([BIN / "memproxy", "completions", "tcsh"], capture_output=True)
    assert proc.returncode == 2


def _complete(words: list[str]) -> list[str]:
    """Source the committed bash script and call its function as bash does on <TAB>."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not installed")
    script = ROOT / "completions" / "memproxy.bash"
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"source '{script}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        "_memproxy_completion memproxy\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", program],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_completes_a_command_name() -> None:
    assert _complete(["memproxy", "att"]) == ["attach"]


def test_bash_completes_registered_project_names() -> None:
    registry = PortRegistry(get_paths())
    for name in ("web-shop", "api", "warehouse"):
        registry.assign(name)
    assert _complete(["memproxy", "detach", ""]) == ["api", "warehouse", "web-shop"]
    assert _complete(["memproxy", "run", "w"]) == ["warehouse", "web-shop"]


def test_project_completion_survives_a_corrupt_registry() -> None:
    paths = get_paths()
    paths.state_dir.mkdir(parents=True)
    paths.registry.write_text("{not json", encoding="utf-8")
    with pytest.raises(RegistryError):
        PortRegistry(paths).entries()
    assert complete_project("") == []
