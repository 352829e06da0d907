"""A compact note of what an agent loop did, from its tool calls: "edited src/app.py, ran pytest".

Only tool names, the files they name and the program a command runs are read; file contents,
patches' bodies, command arguments and tool outputs never are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MAX_ACTIONS = 12
MAX_NOTE_CHARS = 400
_PATH_KEYS = ("file_path", "path", "filePath", "notebook_path", "absolute_path", "target_file")
_COMMAND_KEYS = ("command", "cmd")
_EDIT = re.compile(r"edit|write|replace|patch|create|insert|update|delete|move|rename", re.I)
_READ = re.compile(r"read|view|cat|open|glob|grep|search|list|ls|find", re.I)
_SUBAGENT = re.compile(r"^(?:agent|task|spawn_agent|invoke_agent)$", re.I)
_PATCH_FILE = re.compile(r"^\*\*\* (?:Add|Update|Delete) File: (.+)$", re.M)
_WORD = re.compile(r"[A-Za-z][\w.-]{0,24}")
_SUBCOMMANDS = frozenset(
    [
        "git",
        "npm",
        "pnpm",
        "yarn",
        "bun",
        "cargo",
        "go",
        "make",
        "uv",
        "pip",
        "poetry",
        "docker",
        "kubectl",
        "dotnet",
        "mvn",
        "gradle",
    ]
)


def describe(name: Any, arguments: Any) -> list[str]:
    """What one tool call did, as short phrases (none for a call without a usable name)."""
    if not isinstance(name, str) or not name:
        return []
    args = arguments if isinstance(arguments, dict) else {}
    if _SUBAGENT.match(name):
        return ["started a subagent"]
    command = next((args[k] for k in _COMMAND_KEYS if isinstance(args.get(k), str | list)), None)
    if command is not None:
        program = _program(command)
        return [f"ran {program}"] if program else [f"used {_short(name)}"]
    paths = [args[k] for k in _PATH_KEYS if isinstance(args.get(k), str) and args[k]]
    patch = args.get("input") if isinstance(args.get("input"), str) else None
    if patch and "*** " in patch:
        return [f"edited {_short_path(p)}" for p in _PATCH_FILE.findall(patch)[:MAX_ACTIONS]]
    if paths:
        verb = "edited" if _EDIT.search(name) else "read" if _READ.search(name) else "used"
        return [f"{verb} {_short_path(paths[0])}"]
    return [f"used {_short(name)}"]


def note_of(phrases: Iterable[str]) -> str:
    """The phrases once each, in order, within the note's size."""
    unique = list(dict.fromkeys(phrases))
    kept = unique[:MAX_ACTIONS]
    note = ", ".join(kept)
    if len(unique) > len(kept):
        note += f" and {len(unique) - len(kept)} more"
    return note[:MAX_NOTE_CHARS]


def _program(command: str | list[Any]) -> str:
    """The program a command runs, and its subcommand when it has one (`git commit`)."""
    words = command if isinstance(command, list) else command.strip().split()
    words = [w for w in words if isinstance(w, str)]
    while words and ("=" in words[0] or words[0] in ("sudo", "env", "bash", "sh", "-lc", "-c")):
        words = words[1:]  # VAR=value prefixes and shell wrappers
    if not words:
        return ""
    first = words[0].strip("'\"").rsplit("/", 1)[-1]
    if not _WORD.fullmatch(first):
        return ""
    second = words[1].strip("'\"") if len(words) > 1 else ""
    if first in _SUBCOMMANDS and second.isalpha() and len(second) <= 16:
        return f"{first} {second}"
    return first


def _short_path(path: str) -> str:
    """A path as the tool named it; an absolute one keeps its last three parts."""
    path = path.strip().replace("\n", " ")
    if path.startswith("/"):
        parts = [p for p in path.split("/") if p]
        path = "/".join(parts[-3:])
    return path[:120]


def _short(name: str) -> str:
    return name.strip()[:40]
