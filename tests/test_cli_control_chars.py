"""Terminal output never carries control characters from data; --json stays exact."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

from memproxy_cli.cli import logs_cmds, memory_cmds, spend_cmds
from memproxy_cli.cli.context import Output, output, printable
from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.local import LocalMemoryBackend
from memproxy_cli.paths import get_paths
from memproxy_cli.store.writer import SpendWriter
from tests.fixtures.spend import make_row

CLIPBOARD = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: write "evil" to the clipboard
CURSOR = "\x1b[2J\x1b[H\x9b31m"  # clear screen, cursor home, a C1 CSI
HOSTILE_MODEL = f"gpt-4o{CLIPBOARD}{CURSOR}[/]\u202e"
HOSTILE_TEXT = f"remember {CLIPBOARD}this{CURSOR}\rfake line\x08\x00"
# Any C0/C1 control other than a newline, or a bidi override.
FORBIDDEN = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(autouse=True)
def fresh_consoles(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("COLUMNS", "250")
    for name in ("out", "err"):
        monkeypatch.delitem(output.__dict__, name, raising=False)
    yield
    for name in ("out", "err"):
        output.__dict__.pop(name, None)


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    logs_cmds.register(app)
    spend_cmds.register(app)
    memory_cmds.register(app)
    return app


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args))
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def hostile_rows() -> None:
    writer = SpendWriter(None, get_paths().ensure())
    writer.start()
    writer.submit(make_row(model=HOSTILE_MODEL, project="alpha", status="ok"))
    writer.close()


def test_logs_table_strips_controls_and_json_keeps_them(hostile_rows: None) -> None:
    code, out = _run("logs")
    assert code == 0
    assert not FORBIDDEN.search(out)
    assert "gpt-4o]52;c;ZXZpbA==" in out and "[/]" in out  # the rest shows, literally
    code, out = _run("logs", "--json")
    assert code == 0
    assert json.loads(out)[0]["model"] == HOSTILE_MODEL


def test_spend_table_strips_controls_and_json_keeps_them(hostile_rows: None) -> None:
    code, out = _run("spend", "--by", "model")
    assert code == 0
    assert not FORBIDDEN.search(out)
    assert "[/]" in out
    code, out = _run("spend", "--by", "model", "--json")
    assert code == 0
    assert json.loads(out)[0]["model"] == HOSTILE_MODEL


@pytest.mark.parametrize("command", [("list",), ("search", "remember this fake line")])
def test_memory_table_strips_controls_and_json_keeps_them(command: tuple[str, ...]) -> None:
    store = LocalMemoryBackend(get_paths().ensure().memory_db)
    try:
        store.add_sync("alpha", Turn(HOSTILE_TEXT, "ok"))
    finally:
        store.close_sync()
    code, out = _run("memory", *command, "-p", "alpha")
    assert code == 0
    assert not FORBIDDEN.search(out)
    assert "this" in out and "fake line" in out
    code, out = _run("memory", *command, "-p", "alpha", "--json")
    assert code == 0
    assert json.loads(out)[0]["text"].startswith(f"User: {HOSTILE_TEXT.strip()}")


@pytest.mark.parametrize("text", [f"plain {CLIPBOARD}{CURSOR} words", f"[bold]x[/] {CURSOR}"])
def test_messages_lose_controls_on_the_plain_and_the_rich_path(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    talk = Output()
    talk.print(text)
    talk.say(text + "\nsecond line")
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert stream and not FORBIDDEN.search(stream)
    assert "\nsecond line" in captured.err


def test_printable_keeps_text_newlines_and_makes_other_whitespace_spaces() -> None:
    assert printable("a\tb\nc\x1b[31md\u00a0e") == "a b\nc[31md e"
    assert printable("ünïcode 😀 ok") == "ünïcode 😀 ok"
