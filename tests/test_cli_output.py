"""Plain CLI output bypasses Rich only where Rich would print the very same characters."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from memproxy_cli.cli.context import Output, verbatim

PIECES = st.sampled_from(
    [
        ":smile:",
        ":SMILE:",
        ":+1:",
        ":red_heart-emoji:",
        "::",
        "http://127.0.0.1:8764",
        "bench:8765, other:8766",
        "[bold]",
        "[/]",
        "[bold red]error:[/]",
        "[PROJECT]",
        "[a[b]",
        "\\[bold]",
        "\\[PROJECT]",
        "\\",
        "`memproxy up`",
    ]
)
TEXTS = st.lists(
    PIECES | st.text(alphabet="ab :/[]\\@#=\n\t\r\x07\x0b\x1bé😀", max_size=8), max_size=6
).map("".join) | st.text(max_size=40)


def rich_prints(text: str, terminal: bool) -> str:
    """What a Console set up like `Output`'s writes for TEXT (plain file, or a colour terminal)."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        no_color=not terminal,
        force_terminal=terminal,
        color_system="truecolor" if terminal else None,
        highlight=False,
        soft_wrap=True,
        width=20,
    )
    console.print(text)
    return buffer.getvalue()


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_verbatim_text_is_what_rich_would_print(text: str) -> None:
    if verbatim(text):
        assert rich_prints(text, terminal=False) == text + "\n"
        assert rich_prints(text, terminal=True) == text + "\n"


@pytest.mark.parametrize(
    "text",
    [
        "memproxy is not running (start it with `memproxy up`)",
        "No projects have a port yet; run `memproxy attach [PROJECT]`.",
        "memproxy 0.1.0 running at http://127.0.0.1:8764\n  pid       42\n"
        "  uptime    3m07s\n  listeners my-app:8765, other.app:8766",
        "no spend recorded yet",
    ],
)
def test_everyday_messages_skip_rich(text: str) -> None:
    assert verbatim(text)


@pytest.mark.parametrize("text", ["[bold]x[/]", "a \\[b", "x :smile: y", "a\tb", "a\rb"])
def test_markup_emoji_tabs_and_control_codes_go_through_rich(text: str) -> None:
    assert not verbatim(text)


def test_no_emoji_name_contains_a_slash() -> None:
    """`verbatim` relies on it: a URL such as http://host:port holds no emoji code."""
    from rich._emoji_codes import EMOJI

    assert not [name for name in EMOJI if "/" in name or ":" in name]


def test_print_and_say_write_plain_lines_and_fall_back_to_rich(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = Output()
    out.print("plain data")
    out.say("plain talk")
    assert "out" not in out.__dict__ and "err" not in out.__dict__
    out.print("[bold]styled[/] data")
    out.say("see :smile:")
    captured = capsys.readouterr()
    assert captured.out == "plain data\nstyled data\n"
    assert captured.err == "plain talk\nsee \U0001f604\n"
