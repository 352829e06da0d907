"""Generated docs are fresh, every config key is documented, every command has an example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from memproxy_cli.cli.context import ExitStatus
from memproxy_cli.config import Config, parse_config, unknown_keys
from memproxy_cli.docsgen.__main__ import generated
from memproxy_cli.docsgen.cli_ref import help_pages
from memproxy_cli.docsgen.config_ref import key_docs, paths_in

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pages() -> list[tuple[str, str]]:
    return help_pages()


@pytest.mark.parametrize("rel", ["docs/configuration.md", "docs/cli.md"])
def test_generated_doc_is_fresh(rel: str) -> None:
    committed = (ROOT / rel).read_text(encoding="utf-8")
    assert committed == generated(["docs"])[rel], f"stale {rel}: run `make docs`"


def test_every_config_key_has_a_description() -> None:
    missing = [d.path for d in key_docs() if not d.description.strip()]
    assert not missing, f"add Field(description=...) in memproxy_cli/config.py for {missing}"


def test_every_config_key_is_in_the_reference() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [d.path for d in key_docs() if f"| `{d.path}` |" not in text]
    assert not missing, f"undocumented in docs/configuration.md: {missing}"


def test_every_top_level_key_of_the_model_is_walked() -> None:
    top = {d.path for d in key_docs() if "." not in d.path and "[" not in d.path}
    public = {n for n, f in Config.model_fields.items() if not f.exclude}
    assert top == public


def test_example_config_is_valid_and_sets_every_key() -> None:
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "config.example.yaml")
    assert unknown_keys(config) == []
    present = paths_in(yaml.safe_load(text))
    missing = [d.path for d in key_docs() if d.path not in present]
    assert not missing, f"config.example.yaml lacks {missing}"


def test_exit_codes_are_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for status in ExitStatus:
        assert f"| {int(status)} | `{status.name}` |" in text


def test_every_command_has_help_with_an_example(pages: list[tuple[str, str]]) -> None:
    paths = [path for path, _ in pages]
    for expected in ("memproxy", "memproxy attach", "memproxy memory list", "memproxy completions"):
        assert expected in paths
    lacking = [path for path, text in pages if "Example:" not in text]
    assert not lacking, f"add an `Example:` line to the help of {lacking}"


def test_help_pages_are_real_help(pages: list[tuple[str, str]]) -> None:
    for path, text in pages:
        assert f"Usage: {path}" in text


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "memproxy_cli.docsgen", "--root", str(tmp_path), "completions"]
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 0
    (tmp_path / "completions" / "memproxy.fish").write_text("old\n", encoding="utf-8")
    proc = subprocess.run([*cmd, "--check"], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "completions/memproxy.fish" in proc.stderr
