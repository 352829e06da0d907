"""`memproxy memory list|search|forget|export|stats`: read and manage the store, no daemon."""

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

    columns = ("id", "created", "client", *(["score"] if scored else []), "text")
    table = DataTable(*columns, show_lines=False)
    for r in records:
        text = r["text"].replace("\n", " | ")
        score = [f"{r['score']:.3f}"] if scored else []
        client = r["metadata"].get("client") if isinstance(r["metadata"], dict) else None
        table.add_row(r["id"], r["created_at"], str(client or "-"), *score, text[:160])
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


@memory_app.command("stats")
def stats(project: str = PROJECT, as_json: bool = AS_JSON) -> None:
    """Memories per client and their size, duplicates and chrome left out, turns skipped and why.

    Example: memproxy memory stats --project my-app --json
    """
    from memproxy_cli.config import ConfigError, load_config
    from memproxy_cli.memory.admin import memory_stats
    from memproxy_cli.paths import get_paths

    try:
        config = load_config()
    except ConfigError as exc:
        output.fail(str(exc), ExitStatus.CONFIG)
    found = memory_stats(config, get_paths(), project)
    if as_json:
        output.json(found)
        return
    from memproxy_cli.cli.data_table import DataTable

    table = DataTable("client", "memories", "chars", show_lines=False)
    for client, row in found["by_client"].items():
        table.add_row(client, str(row["memories"]), str(row["chars"]))
    output.out.print(table if found["by_client"] else "no memories")
    chrome = found["chrome_stripped"]
    output.out.print(
        f"{found['memories']} memories, {found['chars']} characters; "
        f"duplicates skipped: {found['duplicates_skipped']}; chrome stripped from "
        f"{chrome['memories']} memories ({chrome['chars']} characters)"
    )
    skipped = ", ".join(f"{k} {v}" for k, v in found["skipped"].items()) or "none"
    output.out.print(f"turns not stored: {skipped}")


def register(app: typer.Typer) -> None:
    app.add_typer(memory_app, name="memory")
