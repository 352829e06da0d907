"""`memproxy memory ...` against a real local store, through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from memproxy_cli.cli import memory_cmds
from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.paths import get_paths


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """test root"""

    memory_cmds.register(root)
    return root


@pytest.fixture
def ids() -> list[str]:
    store = LocalMemoryBackend(get_paths().ensure().memory_db)
    try:
        return [
            store.add_sync("alpha", Turn("we use PostgreSQL 16", "Noted.", created_at=1000.0)),
            store.add_sync("alpha", Turn("frontend is Svelte", "Good.", created_at=2000.0)),
            store.add_sync("beta", Turn("beta uses MySQL", "ok", created_at=3000.0)),
        ]
    finally:
        store.close_sync()


def invoke(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["memory", *args])
    return result.exit_code, result.stdout


def test_list_json_is_newest_first_and_scoped(app: typer.Typer, ids: list[str]) -> None:
    code, out = invoke(app, "list", "--project", "alpha", "--json")
    assert code == 0
    records = json.loads(out)
    assert [r["id"] for r in records] == [ids[1], ids[0]]
    assert records[1]["text"] == "User: we use PostgreSQL 16\nAssistant: Noted."
    assert records[1]["created_at"] == "1970-01-01T00:16:40+00:00"


def test_list_table_for_people(app: typer.Typer, ids: list[str]) -> None:
    code, out = invoke(app, "list", "-p", "alpha")
    assert code == 0
    assert ids[0] in out and "PostgreSQL" in out and "MySQL" not in out


def test_search(app: typer.Typer, ids: list[str]) -> None:
    code, out = invoke(app, "search", "which postgres version?", "-p", "alpha", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [ids[0]]
    code, out = invoke(app, "search", "postgres", "-p", "beta", "--json")
    assert json.loads(out) == []


def test_forget(app: typer.Typer, ids: list[str]) -> None:
    assert invoke(app, "forget", ids[0], "-p", "beta")[0] == 5  # wrong project: not found
    code, out = invoke(app, "forget", ids[0], "-p", "alpha", "--json")
    assert code == 0 and json.loads(out) == {"id": ids[0], "forgotten": True}
    assert invoke(app, "forget", ids[0], "-p", "alpha")[0] == 5
    _, out = invoke(app, "list", "-p", "alpha", "--json")
    assert [r["id"] for r in json.loads(out)] == [ids[1]]


def test_export_jsonl_to_stdout_and_file(app: typer.Typer, ids: list[str], tmp_path: Path) -> None:
    code, out = invoke(app, "export", "-p", "alpha")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in lines] == [ids[0], ids[1]]
    target = tmp_path / "alpha.jsonl"
    code, out = invoke(app, "export", "-p", "alpha", "--output", str(target))
    assert code == 0 and out == ""
    assert [json.loads(x)["id"] for x in target.read_text().splitlines()] == [ids[0], ids[1]]


def test_missing_store_is_empty_and_not_created(app: typer.Typer) -> None:
    code, out = invoke(app, "list", "-p", "alpha", "--json")
    assert code == 0 and json.loads(out) == []
    assert not get_paths().memory_db.exists()


def test_bad_config_exits_with_config_status(memproxy_home: Path) -> None:
    from memproxy_cli.cli.main import app as memproxy_app  # errors map to exit codes there

    config = memproxy_home / "config.yaml"
    config.write_text("memory:\n  backend: nonsense\n")
    result = CliRunner().invoke(
        memproxy_app, ["memory", "list", "-p", "x"], env={"MEMPROXY_CONFIG": str(config)}
    )
    assert result.exit_code == 3
