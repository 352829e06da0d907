"""`memproxy spend --chart`: bars per day whose lengths follow the seeded spend."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from memproxy_cli.cli import spend_cmds
from memproxy_cli.cli.bar_chart import DEFAULT_WIDTH, FULL, bar, bar_cells
from memproxy_cli.paths import Paths
from memproxy_cli.store.writer import SpendWriter
from tests.fixtures.spend import make_row

DAY = 86400.0


def _run(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    spend_cmds.register(app)
    app.command("noop")(lambda: None)  # two commands, so "spend" is a subcommand name
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


@pytest.fixture
def seeded(
    store_url: str | None, paths: Paths, memproxy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> float:
    """Two days: alpha spends $0.40 then $0.10, beta $0.20 on the second day (tokens alike)."""
    today = time.time() // DAY * DAY + 3600
    rows = [
        make_row(
            project="alpha",
            model="gpt-4o",
            started_at=today - DAY,
            cost_usd=0.4,
            prompt_tokens=300,
            completion_tokens=100,
        ),
        make_row(
            project="alpha",
            model="gpt-4o",
            started_at=today,
            cost_usd=0.1,
            prompt_tokens=50,
            completion_tokens=50,
        ),
        make_row(
            project="beta",
            model="claude-sonnet-4-5",
            started_at=today,
            cost_usd=0.1,
            prompt_tokens=100,
            completion_tokens=0,
        ),
        make_row(
            project="beta",
            model="claude-sonnet-4-5",
            started_at=today,
            cost_usd=0.1,
            prompt_tokens=100,
            completion_tokens=0,
        ),
    ]
    writer = SpendWriter(store_url, paths)
    writer.start()
    for row in rows:
        writer.submit(row)
    writer.close()
    if store_url:
        config = memproxy_home / "config.yaml"
        config.write_text(f"database_url: {store_url}\n")
        monkeypatch.setenv("MEMPROXY_CONFIG", str(config))
    return today


def _bars(out: str) -> dict[tuple[str, str], float]:
    """(day or "", group) -> bar length in cells, read back from the printed lines."""
    found, day = {}, ""
    for line in out.splitlines():
        parts = line.split()
        bar_text = "".join(
            p for p in parts if set(p) <= set(FULL + "\u258f\u258e\u258d\u258c\u258b\u258a\u2589")
        )
        if parts[0][:2] == "20":
            day, group = parts[0], parts[1]
        else:
            group = parts[0]
        found[(day, group)] = bar_cells(bar_text)
    return found


def test_cost_bars_by_project_have_the_right_lengths(seeded: float) -> None:
    code, out = _run("spend", "--chart")
    assert code == 0
    bars = _bars(out)
    day1 = time.strftime("%Y-%m-%d", time.gmtime(seeded - DAY))
    day2 = time.strftime("%Y-%m-%d", time.gmtime(seeded))
    assert set(bars) == {(day1, "alpha"), (day2, "alpha"), (day2, "beta")}
    assert bars[(day1, "alpha")] == DEFAULT_WIDTH  # the largest fills the width
    assert bars[(day2, "alpha")] == DEFAULT_WIDTH / 4  # $0.10 against $0.40
    assert bars[(day2, "beta")] == DEFAULT_WIDTH / 2  # $0.20
    assert "$0.4000" in out and "$0.2000" in out


def test_token_bars_by_model(seeded: float) -> None:
    code, out = _run("spend", "--chart", "--tokens", "--by", "model")
    assert code == 0
    bars = _bars(out)
    # gpt-4o: 400 tokens on day one (the largest), 100 on day two; claude 200 on day two.
    assert sorted(c for (_, g), c in bars.items() if g == "gpt-4o") == [10.0, 40.0]
    assert sorted(c for (_, g), c in bars.items() if g == "claude-sonnet-4-5") == [20.0]
    assert "400 tokens" in out and "$" not in out


def test_chart_json_lists_each_day_and_group(seeded: float) -> None:
    code, out = _run("spend", "--chart", "--json")
    assert code == 0
    rows = json.loads(out)
    assert sorted((r["project"], round(r["cost_usd"], 4)) for r in rows) == [
        ("alpha", 0.1),
        ("alpha", 0.4),
        ("beta", 0.2),
    ]


def test_bar_rounds_to_eighths() -> None:
    assert bar(0, 10, 40) == "" and bar(5, 0, 40) == ""
    assert bar_cells(bar(1, 3, 40)) == round(40 / 3 * 8) / 8
    assert bar_cells(bar(10, 10, 40)) == 40
