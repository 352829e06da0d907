"""Client chrome: text a coding client adds to the human's message that the human did not type.

Two mechanisms. A short list of the wrappers known clients put around their context (Claude
Code's reminders and slash-command output, Codex's environment and subagent notices, Gemini
CLI's session context, IDE context blocks). And a general one: a paragraph the client repeats
verbatim, because it is also in the system prompt (aider appends its edit-format rules, which
its system prompt holds too) or because it was already in an earlier human message of the same
conversation, is chrome whatever its wording.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass

WRAPPER_TAGS = (
    "system-reminder",
    "memproxy-memories",
    "local-command-caveat",
    "command-name",
    "command-message",
    "command-args",
    "local-command-stdout",
    "local-command-stderr",
    "environment_context",
    "subagent_notification",
    "session_context",
    "user_instructions",
    "ide_opened_file",
    "ide_selection",
    "ide_diagnostics",
)
WRAPPERS = re.compile(
    r"<(" + "|".join(re.escape(t) for t in WRAPPER_TAGS) + r")(?:\s[^>]*)?>.*?</\1>", re.S
)
# Shorter paragraphs ("ok", "run the tests") may well repeat because the human repeats them.
MIN_REPEATED_CHARS = 24
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True, slots=True)
class Cleaned:
    text: str
    stripped_chars: int  # how much chrome was removed


def strip_wrappers(text: str) -> str:
    """The text without the known wrapper blocks."""
    return WRAPPERS.sub("", text) if "<" in text else text


def strip_chrome(
    text: str,
    system: str,
    seen: MutableMapping[int, int] | None = None,
    origin: int = 0,
    learn: bool = True,
) -> Cleaned:
    """The human's own words: wrappers removed, then every paragraph the client repeats.

    `seen` maps the hashes of paragraphs of the conversation's human messages to the message
    they were first seen in (`origin` names this one, so a message sent again is not taken for
    a repetition); with `learn`, this message's paragraphs are added to it. When every paragraph
    left is one the human already wrote in this conversation, the human repeated themselves:
    those stay.
    """
    unwrapped = strip_wrappers(text)
    removed = len(text) - len(unwrapped)
    kept: list[str] = []
    repeated_here: list[str] = []
    for paragraph in _PARAGRAPHS.split(unwrapped):
        stripped = paragraph.strip()
        if not stripped:
            continue
        if len(stripped) >= MIN_REPEATED_CHARS:
            if stripped in system:
                removed += len(stripped)
                continue
            if seen is not None:
                h = hash(stripped)
                first = seen.setdefault(h, origin) if learn else seen.get(h, origin)
                if first != origin:
                    repeated_here.append(stripped)
                    continue
        kept.append(stripped)
    if not kept:
        kept = repeated_here
    else:
        removed += sum(len(p) for p in repeated_here)
    return Cleaned("\n\n".join(kept), removed)
