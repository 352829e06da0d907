"""`memproxy memory list|search|forget|export`: read and manage the store directly, no daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from memproxy_cli.cli.context import ExitStatus, output

if TYPE_CHECKING:
    from memproxy_cli.memory.backend import MemoryBackend

memory_app = typer.Typer(
    help="Inspect and manage memories.\n\nExample: memproxy memory list --project my-app",
    no_args_is_help=True,
)
PROJECT = typer.Option(..., "--project", "-p", help="Project (memory scope).")
AS_JSON = typer.Option(False, "--json", help="One JSON document on stdout.")
OUTPUT = typer.Option(None, "--output", "-o", help="Write here, not stdout.")


def _backend(project: str) -> MemoryBackend | None:
    from memproxy_cli.config import load_config
    from memproxy_cli.memory.admin import open_backend
    from memproxy_cli.paths import get_paths

    config = load_config()
    return open_backend(config, get_paths(), project)


def _show(records: list[dict[str, Any]], as_json: bool, scored: bool = False) -> None:
    if as_json:
        output.json(records)
        return
    from memproxy_cli.cli.data_table import DataTable

    table = DataTable("id", "created", *(["score"] if scored else []), "text", show_lines=False)
    for r in records:
        text = r["text"].replace("\n", " | ")
        score = [f"{r['score']:.3f}"] if scored else []
        table.add_row(r["id"], r["created_at"], *score, text[:160])
    output.out.print(table if records else "no memories")


@memory_app.command("list")
def list_memories(project: str = PROJECT, limit: int = 50, as_json: bool = AS_JSON) -> None:
    """The newest memories of a project.

    Example: memproxy memory list --project my-app --limit 20
    """
    from memproxy_cli.memory.admin import run, to_record

    backend = _backend(project)
    found = run(backend, lambda b: b.list(project, limit=limit)) if backend else []
    _show([to_record(m) for m in found], as_json)


@memory_app.command("search")
def search(query: str, project: str = PROJECT, k: int = 5, as_json: bool = AS_JSON) -> None:
    """Recall memories as the gateway would for QUERY.

    Example: memproxy memory search "database migrations" --project my-app
    """
    from memproxy_cli.memory.admin import run, to_record

    backend = _backend(project)
    found = run(backend, lambda b: b.search(project, query, k)) if backend else []
    _show([to_record(m) for m in found], as_json, scored=True)


@memory_app.command("forget")
def forget(memory_id: str, project: str = PROJECT, as_json: bool = AS_JSON) -> None:
    """Delete one memory by id.

    Example: memproxy memory forget 3f9c2a1b7d4e5f60 --project my-app
    """
    from memproxy_cli.memory.admin import run

    backend = _backend(project)
    gone = run(backend, lambda b: b.forget(project, memory_id)) if backend else False
    if as_json:
        output.json({"id": memory_id, "forgotten": gone})
    if not gone:
        output.fail(f"no memory {memory_id!r} in project {project!r}", ExitStatus.NOT_FOUND)
    if not as_json:
        output.say(f"forgot {memory_id}")


@memory_app.command("export")
def export(
    project: str = PROJECT,
    out: Path | None = OUTPUT,
    as_json: bool = AS_JSON,
) -> None:
    """Every memory of a project as JSON lines, oldest first (--json: one JSON list).

    Example: memproxy memory export --project my-app -o my-app-memories.jsonl
    """
    from memproxy_cli.memory.admin import run, to_record

    backend = _backend(project)
    with output.err.status(f"exporting the memories of {project}..."):  # 100k take seconds
        found = run(backend, lambda b: b.export(project)) if backend else []
        records = [to_record(m) for m in found]
    text = (
        json.dumps(records, indent=2) + "\n"
        if as_json
        else "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    )
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        output.say(f"wrote {len(records)} memories to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
