"""`memproxy logs` and `memproxy spend` against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import typer
from typer.testing import CliRunner

from memproxy_cli.cli import logs_cmds, spend_cmds
from memproxy_cli.cli.context import output
from memproxy_cli.paths import Paths
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.store.writer import SpendWriter
from tests.fixtures.spend import make_row

_APP_SCRIPT = """
import sys, typer
from memproxy_cli.cli import logs_cmds, spend_cmds
app = typer.Typer()
logs_cmds.register(app)
spend_cmds.register(app)
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    heavy = sorted(m for m in ("sqlalchemy", "sqlmodel", "litellm", "aiohttp") if m in sys.modules)
    print("HEAVY", ",".join(heavy), file=sys.stderr, flush=True)
"""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Rich tables as wide as a roomy terminal; consoles made for this test only."""
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("out", "err"):
        monkeypatch.delitem(output.__dict__, name, raising=False)
    yield
    for name in ("out", "err"):
        output.__dict__.pop(name, None)


def _app() -> typer.Typer:
    app = typer.Typer()
    logs_cmds.register(app)
    spend_cmds.register(app)
    return app


def _write(store_url: str | None, paths: Paths, rows: list[RequestRow]) -> None:
    writer = SpendWriter(store_url, paths)
    writer.start()
    for row in rows:
        writer.submit(row)
    writer.close()


def _use_store(store_url: str | None, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if store_url:
        config = home / "config.yaml"
        config.write_text(f"database_url: {store_url}\n")
        monkeypatch.setenv("MEMPROXY_CONFIG", str(config))


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def sample(
    store_url: str | None, paths: Paths, memproxy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> list[RequestRow]:
    now = time.time()
    rows = [
        make_row(project="alpha", model="gpt-4o", started_at=now - 7200, cost_usd=0.5),
        make_row(project="alpha", model="claude-sonnet-4-5", status="error", http_status=529),
        make_row(project="beta", model="gpt-4o", cost_usd=0.25, cache_read_tokens=3),
    ]
    _write(store_url, paths, rows)
    _use_store(store_url, memproxy_home, monkeypatch)
    return rows


def test_logs_json_and_filters(sample: list[RequestRow]) -> None:
    code, out, _ = _run("logs", "--json")
    assert code == 0
    assert [r["request_id"] for r in json.loads(out)] == [r.request_id for r in sample]
    assert json.loads(_run("logs", "--json", "-n", "1")[1])[0]["request_id"] == sample[2].request_id
    alpha = json.loads(_run("logs", "--json", "--project", "alpha")[1])
    assert [r["project"] for r in alpha] == ["alpha", "alpha"]
    errors = json.loads(_run("logs", "--json", "--status", "error")[1])
    assert [(r["status"], r["http_status"]) for r in errors] == [("error", 529)]
    recent = json.loads(_run("logs", "--json", "--since", "1h", "--model", "gpt-4o")[1])
    assert [r["project"] for r in recent] == ["beta"]


def test_logs_table_for_people(sample: list[RequestRow]) -> None:
    code, out, _ = _run("logs")
    assert code == 0
    assert "claude-sonnet-4-5" in out and "error 529" in out
    assert sample[0].request_id[-logs_cmds.ID_TAIL :] in out  # the end of a random id tells it


def test_bad_since_is_a_usage_error(sample: list[RequestRow]) -> None:
    code, _, err = _run("logs", "--since", "yesterday-ish")
    assert code == 2 and "--since" in err


def test_spend_by_project_model_day(sample: list[RequestRow]) -> None:
    code, out, _ = _run("spend", "--json")
    assert code == 0
    by_project = {r["project"]: r for r in json.loads(out)}
    assert by_project["alpha"]["requests"] == 2 and by_project["alpha"]["failures"] == 1
    assert by_project["beta"]["cost_usd"] == 0.25
    assert by_project["beta"]["cache_read_tokens"] == 3
    by_model = {
        r["model"]: r["requests"] for r in json.loads(_run("spend", "--by", "model", "--json")[1])
    }
    assert by_model == {"gpt-4o": 2, "claude-sonnet-4-5": 1}
    days = json.loads(_run("spend", "--by", "day", "--json")[1])
    assert sum(d["requests"] for d in days) == 3
    code, out, _ = _run("spend", "--by", "model")
    assert code == 0 and "gpt-4o" in out and "total" in out
    assert _run("spend", "--by", "user")[0] == 2


def test_empty_store_says_so(paths: Paths) -> None:
    assert json.loads(_run("logs", "--json")[1]) == []
    code, _, err = _run("spend")
    assert code == 0 and "no spend recorded yet" in err


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _APP_SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def test_sqlite_cli_imports_nothing_heavy(paths: Paths) -> None:
    _write(None, paths, [make_row()])
    for args in (("logs", "-n", "5"), ("spend", "--json")):
        proc = _cli(*args)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "HEAVY \n" in err, err


def _line(stream: IO[str], timeout: float = 60.0) -> str:
    """The stream's next line, or a failure after `timeout` (never a hung test)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line within {timeout} s") from None


def test_follow_prints_new_rows_as_json_lines_until_ctrl_c(paths: Paths) -> None:
    _write(None, paths, [make_row(request_id="before")])
    proc = _cli("logs", "--follow", "--json", "--project", "alpha")
    assert proc.stdout is not None
    try:
        assert json.loads(_line(proc.stdout))["request_id"] == "before"
        _write(None, paths, [make_row(request_id="other", project="beta")])
        _write(None, paths, [make_row(request_id="after")])
        assert json.loads(_line(proc.stdout))["request_id"] == "after"
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert rest == ""


def test_follow_never_skips_a_row_written_while_it_prints_the_first_ones(
    paths: Paths, memproxy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row stored between the first read and the follow loop is printed by the loop."""
    _write(None, paths, [make_row(request_id="before")])
    queries = logs_cmds.open_store()
    recent = queries.recent_rows

    def read_then_a_row_arrives(n: int, **filters: object) -> list[dict[str, object]]:
        rows = recent(n, **filters)  # type: ignore[arg-type]
        _write(None, paths, [make_row(request_id="meanwhile")])
        return rows

    monkeypatch.setattr(queries, "recent_rows", read_then_a_row_arrives)
    monkeypatch.setattr(logs_cmds, "open_store", lambda: queries)
    printed: list[str] = []
    monkeypatch.setattr(output, "json_line", lambda row: printed.append(row["request_id"]))
    polls = iter([None])

    def poll(_seconds: float) -> None:
        if next(polls, "stop") == "stop":
            raise KeyboardInterrupt

    monkeypatch.setattr(logs_cmds.time, "sleep", poll)
    logs_cmds.logs(
        n=20, follow=True, project=None, model=None, status=None, since=None, as_json=True
    )
    assert printed == ["before", "meanwhile"]


def test_logs_fit_80_columns_without_cutting_names(memproxy_home: Path) -> None:
    """At 80 columns the model, project and the telling end of the id show whole."""
    from memproxy_cli.cli import logs_cmds as logs_module
    from tests.fixtures.spend import make_row

    rows = [
        make_row(model="claude-sonnet-4-5-20250929", project="payments-api").to_dict()
        | {"id": i, "request_id": f"req_{i:024x}abcdef12"}
        for i in range(3)
    ]
    import io

    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=80, no_color=True)
    original = logs_module.output.out
    try:
        logs_module.output.__dict__["out"] = console
        logs_module.render_rows(rows)
    finally:
        logs_module.output.__dict__["out"] = original
    text = buffer.getvalue()
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert text.count("claude-sonnet-4-5-20250929") == 3
    assert text.count("payments-api") == 3 and text.count("cdef12") == 3


def _open_transaction_with_a_row(url: str, paths: Paths, row: RequestRow) -> Any:
    """A connection holding `row` inserted (its id taken) and not committed."""
    from memproxy_cli.store.engine import open_engine
    from memproxy_cli.store.insert import _insert_rows_postgres

    engine = open_engine(url, paths)
    conn = engine.connect()
    conn.begin()
    _insert_rows_postgres(conn, [row])
    return engine, conn


def test_follow_on_postgres_prints_a_row_that_commits_below_rows_already_printed(
    postgres_url: str, paths: Paths
) -> None:
    """PostgreSQL takes a row's id at insert: a row whose commit comes after a later row's is
    printed when it commits, once, and rows there before the follow started are not."""
    from memproxy_cli.cli.log_follow import Follow
    from memproxy_cli.store.queries import open_queries

    _write(postgres_url, paths, [make_row(request_id="old")])
    engine, early = _open_transaction_with_a_row(
        postgres_url, paths, make_row(request_id="slow-before-start")
    )
    _write(postgres_url, paths, [make_row(request_id="before")])  # its id is above the slow one's
    queries = open_queries(postgres_url, paths)
    assert queries.late_ids > 0
    tail = Follow(queries, {"project": None, "model": None, "status": None, "since": 0.0})
    try:
        assert [r["request_id"] for r in tail.first(1)] == ["before"]
        _engine2, late = _open_transaction_with_a_row(
            postgres_url, paths, make_row(request_id="slow")
        )
        _write(postgres_url, paths, [make_row(request_id="fast")])
        assert [r["request_id"] for r in tail.poll()] == ["fast"]
        late.commit()
        early.commit()
        assert [r["request_id"] for r in tail.poll()] == ["slow-before-start", "slow"]
        assert tail.poll() == []
        _write(postgres_url, paths, [make_row(request_id="next")])
        assert [r["request_id"] for r in tail.poll()] == ["next"]
    finally:
        for conn in (early, late):
            conn.close()
        engine.dispose()
        _engine2.dispose()


def test_follow_on_postgres_keeps_filters_for_late_rows(postgres_url: str, paths: Paths) -> None:
    from memproxy_cli.cli.log_follow import Follow
    from memproxy_cli.store.queries import open_queries

    _write(postgres_url, paths, [make_row(request_id="before", project="alpha")])
    filters = {"project": "alpha", "model": None, "status": None, "since": 0.0}
    tail = Follow(open_queries(postgres_url, paths), filters)
    assert [r["request_id"] for r in tail.first(5)] == ["before"]
    engine, late_beta = _open_transaction_with_a_row(
        postgres_url, paths, make_row(request_id="late-beta", project="beta")
    )
    engine2, late_alpha = _open_transaction_with_a_row(
        postgres_url, paths, make_row(request_id="late-alpha", project="alpha")
    )
    try:
        _write(postgres_url, paths, [make_row(request_id="fast", project="alpha")])
        assert [r["request_id"] for r in tail.poll()] == ["fast"]
        late_beta.commit()
        late_alpha.commit()
        assert [r["request_id"] for r in tail.poll()] == ["late-alpha"]
        assert tail.poll() == []
    finally:
        late_beta.close()
        late_alpha.close()
        engine.dispose()
        engine2.dispose()
