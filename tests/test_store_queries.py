"""The read side: health checks for doctor, --since parsing, follow cursor, an absent store."""

from __future__ import annotations

import pytest

from memproxy_cli.paths import Paths
from memproxy_cli.store.queries import open_queries, parse_since
from memproxy_cli.store.spill import SpillFile
from memproxy_cli.store.writer import SpendWriter
from tests.fixtures.spend import make_row


def test_absent_store_reads_as_empty(paths: Paths) -> None:
    q = open_queries(None, paths)
    assert q.recent_rows(10) == []
    assert q.spend_totals() == []
    assert q.last_id() == 0
    assert not q.migrations_current()
    assert not paths.spend_db.exists()  # reading never creates the store


def test_doctor_checks(store_url: str | None, paths: Paths) -> None:
    writer = SpendWriter(store_url, paths)
    writer.start()
    writer.submit(make_row())
    writer.close()
    q = open_queries(store_url, paths)
    assert q.integrity_check() == "ok"
    assert q.migrations_current()
    assert q.pending_spill() == 0
    SpillFile(paths.spill_file).append([make_row(), make_row()])
    assert q.pending_spill() == 2


def test_rows_after_is_a_cursor(store_url: str | None, paths: Paths) -> None:
    writer = SpendWriter(store_url, paths)
    writer.start()
    writer.submit(make_row(request_id="a"))
    writer.submit(make_row(request_id="b", project="other"))
    writer.close()
    q = open_queries(store_url, paths)
    first = q.rows_after(0)
    assert [r["request_id"] for r in first] == ["a", "b"]
    assert q.rows_after(int(first[0]["id"])) == first[1:]
    assert [r["request_id"] for r in q.rows_after(0, project="alpha")] == ["a"]
    assert q.last_id() == int(first[1]["id"])


def test_parse_since() -> None:
    now = 1_800_000_000.0
    assert parse_since("1h", now) == now - 3600
    assert parse_since("30m", now) == now - 1800
    assert parse_since("2d", now) == now - 2 * 86400
    assert parse_since("2026-11-01", now) == 1_793_491_200.0  # midnight UTC
    assert parse_since("2026-11-01T12:00:00+01:00", now) == 1_793_491_200.0 + 11 * 3600
    assert parse_since(None, now) == 0.0
    with pytest.raises(ValueError, match="--since"):
        parse_since("last tuesday", now)


def test_totals_queries_sum_exactly_the_rows_counters() -> None:
    """The totals SQL is literal; it must add up every counter the row defines, and no other."""
    import re

    from memproxy_cli.store import queries
    from memproxy_cli.store.rows import DAILY_COUNTERS

    for sql in queries._TOTALS.values():
        summed = re.findall(r"SUM\((\w+)\) AS (\w+)", sql)
        assert all(a == b for a, b in summed)
        assert [a for a, _ in summed] == [*DAILY_COUNTERS, "cost_usd"]
