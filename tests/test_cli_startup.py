"""What everyday commands import in a fresh process, and that the light --help path is identical."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from memproxy_cli.cli.main import asks_for_help
from memproxy_cli.docsgen.cli_ref import help_pages

# Runs `memproxy ARGS` through the console entry point, then prints the loaded module names.
_MODULES = """
import json, sys
from memproxy_cli.cli.main import main
sys.argv = ["memproxy", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""

# Never needed to list ports, show the status, or read the request log.
HEAVY = ("litellm", "aiohttp", "httpx", "pydantic", "sqlalchemy", "sqlmodel", "yaml", "psycopg")
# Only the two help-formatter imports that the CLI never uses (see cli/help_format.py).
HELP_UNUSED = ("rich.markdown", "rich.traceback", "markdown_it", "pygments")


def modules_after(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _MODULES, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


@pytest.mark.parametrize(
    "args", [("ports",), ("status",), ("status", "--json"), ("ports", "--json")]
)
def test_plain_commands_import_neither_rich_nor_heavy_packages(args: tuple[str, ...]) -> None:
    """No projects and no daemon: the answer is one line, so Rich stays unloaded."""
    modules = modules_after(*args)
    assert loaded(modules, ("rich", *HEAVY)) == []
    assert loaded(modules, ("http", "email", "ssl")) == []  # no daemon to ask


@pytest.mark.parametrize("args", [("top",), ("top", "--json"), ("spend", "--chart")])
def test_top_and_the_chart_import_no_heavy_packages(args: tuple[str, ...]) -> None:
    assert loaded(modules_after(*args), (*HEAVY, "opentelemetry")) == []


def test_logs_reads_the_store_without_heavy_packages() -> None:
    modules = modules_after("logs", "-n", "20")
    assert "sqlite3" in modules and "rich.table" in modules
    assert loaded(modules, HEAVY) == []


# The embedding runtime is the daemon's: a memory command searches by words only.
EMBEDDING_RUNTIME = (
    "numpy",
    "safetensors",
    "tokenizers",
    "onnxruntime",
    "memproxy_cli.memory.embeddings",
    "memproxy_cli.memory.embeddings_onnx",
)


@pytest.mark.parametrize("args", [("search", "staging port"), ("list",)])
def test_memory_commands_never_load_the_embedding_model(
    args: tuple[str, ...], memproxy_home: Path
) -> None:
    from memproxy_cli.memory.backend import Turn
    from memproxy_cli.memory.local import LocalMemoryBackend
    from memproxy_cli.paths import get_paths

    store = LocalMemoryBackend(get_paths().memory_db)
    store.add_sync("my-app", Turn(user="the staging port is 5433", assistant="noted"))
    store.close_sync()
    modules = modules_after("memory", *args, "--project", "my-app")
    assert "memproxy_cli.memory.local" in modules  # the store was read
    assert loaded(modules, EMBEDDING_RUNTIME) == []


@pytest.mark.parametrize("args", [("--help",), (), ("logs", "--help"), ("memory", "list", "-h")])
def test_help_leaves_markdown_and_traceback_unimported(args: tuple[str, ...]) -> None:
    modules = modules_after(*args)
    assert "typer.rich_utils" in modules
    assert loaded(modules, (*HELP_UNUSED, *HEAVY)) == []


def test_help_in_a_fresh_process_matches_the_reference() -> None:
    """docs/cli.md comes from the full formatter in-process; the start-up path must match it."""
    reference = dict(help_pages())
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PY_COLORS")}
    env.pop("GITHUB_ACTIONS", None)
    env.update(
        TERMINAL_WIDTH="100",
        COLUMNS="100",
        NO_COLOR="1",
        _TYPER_FORCE_DISABLE_TERMINAL="1",
        PYTHONIOENCODING="utf-8",
    )
    for path in ([], ["logs"], ["memory"], ["memory", "search"], ["run"]):
        result = subprocess.run(
            [sys.executable, "-m", "memproxy_cli", *path, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=True,
        )
        text = "\n".join(line.rstrip() for line in result.stdout.splitlines()).strip("\n")
        assert text == reference[" ".join(["memproxy", *path])]


def test_stand_ins_build_the_real_rich_objects() -> None:
    code = """
import sys
from memproxy_cli.cli.help_format import import_help_formatter
import_help_formatter()
import typer.rich_utils as ru
assert "rich.markdown" not in sys.modules and "rich.traceback" not in sys.modules
from rich.markdown import Markdown
from rich.traceback import Traceback
assert isinstance(ru.Markdown("*x*"), Markdown)
try:
    1 / 0
except ZeroDivisionError as exc:
    tb = ru.Traceback.from_exception(type(exc), exc, exc.__traceback__)
assert isinstance(tb, Traceback)
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], True),
        (["--help"], True),
        (["memory", "list", "-h"], True),
        (["ports"], False),
        (["logs", "-n", "20"], False),
        (["run", "my-app", "--", "claude", "--help"], False),
    ],
)
def test_asks_for_help(args: list[str], expected: bool) -> None:
    assert asks_for_help(args) is expected
