"""The single writer: batches, exactly one row per request, spill and replay, drain on close."""

from __future__ import annotations

import sqlite3
import threading
import time

from memproxy_cli.paths import Paths
from memproxy_cli.store.queries import open_queries
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.store.spill import SpillFile, count_pending
from memproxy_cli.store.writer import SpendWriter
from tests.fixtures.servers import PostgresServer, admin
from tests.fixtures.spend import make_row, wait_until


def _stored_ids(store_url: str | None, paths: Paths) -> list[str]:
    rows = open_queries(store_url, paths).recent_rows(1_000_000)
    return [r["request_id"] for r in rows]


def test_rows_are_written_in_batches(store_url: str | None, paths: Paths) -> None:
    writer = SpendWriter(store_url, paths, batch_rows=100)
    writer.start()
    rows = [make_row() for _ in range(1050)]
    for row in rows:
        writer.submit(row)
    wait_until(lambda: writer.stats["written"] == 1050, what="all rows written")
    writer.close()
    stats = writer.stats
    assert stats["batches"] >= 11
    assert stats["spilled"] == stats["dropped"] == stats["queued"] == 0
    assert sorted(_stored_ids(store_url, paths)) == sorted(r.request_id for r in rows)


def test_row_fields_round_trip(store_url: str | None, paths: Paths) -> None:
    row = make_row(
        stream=True,
        status="client_disconnect",
        http_status=None,
        cache_read_tokens=7,
        trace_id="a" * 32,
        client_instance="pc-1",
        memories_injected=3,
        extra={"k": "v"},
    )
    writer = SpendWriter(store_url, paths)
    writer.start()
    writer.submit(row)
    writer.close()
    [stored] = open_queries(store_url, paths).recent_rows(5)
    expected = row.to_dict()
    assert {k: stored[k] for k in expected} == expected


def test_close_drains_the_queue(store_url: str | None, paths: Paths) -> None:
    writer = SpendWriter(store_url, paths, batch_rows=1_000_000, flush_interval_s=3600)
    writer.start()
    rows = [make_row() for _ in range(3000)]
    for row in rows:
        writer.submit(row)
    writer.close(timeout=60)
    assert writer.stats["written"] == 3000
    assert len(_stored_ids(store_url, paths)) == 3000


def test_one_row_per_request_id_across_resubmits_and_replays(
    store_url: str | None, paths: Paths
) -> None:
    rows = [make_row() for _ in range(20)]
    SpillFile(paths.spill_file).append(rows[:10] + rows[:5])  # a spill with duplicates
    committed: list[RequestRow] = []
    writer = SpendWriter(store_url, paths)
    writer.on_commit(committed.extend)
    writer.start()
    for row in rows[5:] + rows[5:]:  # overlaps the spill and repeats itself
        writer.submit(row)
    writer.close()
    ids = _stored_ids(store_url, paths)
    assert sorted(ids) == sorted(r.request_id for r in rows)
    assert sorted(r.request_id for r in committed) == sorted(ids)
    assert writer.stats["replayed"] + writer.stats["written"] == 20
    assert count_pending(paths.spill_file) == 0
    # a second replay of the same rows changes nothing, totals included
    SpillFile(paths.spill_file).append(rows)
    again = SpendWriter(store_url, paths)
    again.start()
    again.close()
    assert again.stats["replayed"] == 0
    assert len(_stored_ids(store_url, paths)) == 20
    [total] = open_queries(store_url, paths).spend_totals(by="project")
    assert total["requests"] == 20


def test_daily_aggregates(store_url: str | None, paths: Paths) -> None:
    day1, day2 = 1_790_000_000.0, 1_790_000_000.0 + 86_400
    rows = [
        make_row(started_at=day1, project="a", model="m1", cost_usd=0.5, prompt_tokens=100),
        make_row(started_at=day1 + 10, project="a", model="m1", cost_usd=0.25, status="error"),
        make_row(started_at=day1, project="b", model="m2", cost_usd=1.0, cache_write_tokens=4),
        make_row(started_at=day2, project="a", model="m2", cost_usd=None, prompt_tokens=None),
        make_row(started_at=day2, project=None, model=None, cost_usd=0.125),
    ]
    writer = SpendWriter(store_url, paths, batch_rows=2)
    writer.start()
    for row in rows:
        writer.submit(row)
    writer.close()
    q = open_queries(store_url, paths)
    by_project = {r["key"]: r for r in q.spend_totals(by="project")}
    assert by_project["a"]["requests"] == 3
    assert by_project["a"]["failures"] == 1
    assert by_project["a"]["cost_usd"] == 0.75
    assert by_project["a"]["prompt_tokens"] == 110
    assert by_project["b"]["cache_write_tokens"] == 4
    assert by_project[""]["cost_usd"] == 0.125
    by_day = q.spend_totals(by="day")
    assert [(r["key"], r["requests"]) for r in by_day] == [("2026-09-21", 3), ("2026-09-22", 2)]
    by_model = {r["key"]: r["cost_usd"] for r in q.spend_totals(by="model", since=day2)}
    assert by_model == {"m2": 0.0, "": 0.125}
    assert q.project_costs("2026-09-21") == {"a": 0.75, "b": 1.0, "": 0.125}


def test_full_queue_spills_and_nothing_is_lost(paths: Paths) -> None:
    writer = SpendWriter(None, paths, queue_max=10)
    rows = [make_row() for _ in range(50)]
    for row in rows:  # not started yet: the queue fills, the rest spills
        writer.submit(row)
    assert writer.stats["spilled"] == 40
    writer.start()
    writer.close()
    assert sorted(_stored_ids(None, paths)) == sorted(r.request_id for r in rows)
    assert writer.stats["replayed"] == 40 and writer.stats["written"] == 10


def test_locked_sqlite_store_spills_then_replays(paths: Paths) -> None:
    writer = SpendWriter(None, paths, busy_timeout_ms=100, flush_interval_s=0.05)
    writer.start()
    first = [make_row() for _ in range(5)]
    for row in first:
        writer.submit(row)
    wait_until(lambda: writer.stats["written"] == 5, what="first rows")

    blocker = sqlite3.connect(paths.spend_db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    during = [make_row() for _ in range(200)]
    submit_times = []
    for row in during:
        t0 = time.perf_counter()
        writer.submit(row)
        submit_times.append(time.perf_counter() - t0)
    wait_until(lambda: writer.stats["spilled"] == 200, what="rows spilled while locked")
    assert count_pending(paths.spill_file) == 200
    blocker.execute("ROLLBACK")
    blocker.close()

    wait_until(lambda: writer.stats["replayed"] == 200, what="spill replayed")
    after = make_row()
    writer.submit(after)
    writer.close()
    expected = [r.request_id for r in [*first, *during, after]]
    assert sorted(_stored_ids(None, paths)) == sorted(expected)
    assert count_pending(paths.spill_file) == 0
    assert writer.stats["dropped"] == 0


def test_read_only_postgres_spills_then_replays(
    postgres_server: PostgresServer, postgres_url: str, paths: Paths
) -> None:
    dbname = postgres_url.rsplit("/", 1)[1]
    writer = SpendWriter(postgres_url, paths, flush_interval_s=0.05)
    writer.start()
    writer.submit(make_row())
    wait_until(lambda: writer.stats["written"] == 1, what="first row")

    admin(postgres_server, f"ALTER DATABASE {dbname} SET default_transaction_read_only = on")
    _kick_sessions(postgres_server, dbname)
    during = [make_row() for _ in range(100)]
    for row in during:
        writer.submit(row)
    wait_until(lambda: writer.stats["spilled"] == 100, what="rows spilled while read-only")

    admin(postgres_server, f"ALTER DATABASE {dbname} SET default_transaction_read_only = off")
    _kick_sessions(postgres_server, dbname)
    wait_until(lambda: writer.stats["replayed"] == 100, what="spill replayed")
    writer.close()
    assert len(_stored_ids(postgres_url, paths)) == 101
    assert writer.stats["dropped"] == 0


def _kick_sessions(server: PostgresServer, dbname: str) -> None:
    """Make open sessions reconnect so a database-level setting applies to them."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        )


def test_submit_is_thread_safe(paths: Paths) -> None:
    writer = SpendWriter(None, paths)
    writer.start()
    per_thread = 500

    def produce() -> None:
        for _ in range(per_thread):
            writer.submit(make_row())

    threads = [threading.Thread(target=produce) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    writer.close()
    assert len(set(_stored_ids(None, paths))) == 4 * per_thread


def test_store_unreachable_at_start_spills(paths: Paths, closed_port: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port}/none"
    writer = SpendWriter(url, paths)
    writer.start()
    for _ in range(3):
        writer.submit(make_row())
    writer.close()
    assert writer.stats["spilled"] == 3
    assert count_pending(paths.spill_file) == 3


def test_rows_after_close_are_spilled_and_replayed_next_start(paths: Paths) -> None:
    writer = SpendWriter(None, paths)
    writer.start()
    writer.close()
    late = make_row()
    writer.submit(late)
    assert writer.stats["spilled"] == 1
    again = SpendWriter(None, paths)
    again.start()
    again.close()
    assert _stored_ids(None, paths) == [late.request_id]


def test_close_without_start_keeps_the_rows(paths: Paths) -> None:
    writer = SpendWriter(None, paths)
    rows = [make_row() for _ in range(3)]
    for row in rows:
        writer.submit(row)
    writer.close()
    assert count_pending(paths.spill_file) == 3
    again = SpendWriter(None, paths)
    again.start()
    again.close()
    assert sorted(_stored_ids(None, paths)) == sorted(r.request_id for r in rows)


def test_write_batch_stores_every_row_of_an_uneven_batch_once(
    store_url: str | None, paths: Paths
) -> None:
    from memproxy_cli.store.engine import open_engine
    from memproxy_cli.store.insert import write_batch
    from memproxy_cli.store.migrations import migrate

    engine = open_engine(store_url, paths)
    migrate(engine)
    rows = [make_row(extra={"n": i}, ttft_ms=float(i)) for i in range(75)]  # 32+32+8+2+1
    try:
        assert len(write_batch(engine, rows)) == 75
        assert write_batch(engine, rows[:40]) == []  # a replay inserts nothing
    finally:
        engine.dispose()
    stored = {r["request_id"]: r for r in open_queries(store_url, paths).recent_rows(1000)}
    assert len(stored) == 75
    for row in (rows[0], rows[40], rows[74]):
        assert {k: stored[row.request_id][k] for k in row.to_dict()} == row.to_dict()
