"""What a project name, a memory user id and a memory namespace may be.

Each becomes part of a file name, a URL path segment (Supermemory's `/v3/ns/<namespace>/...`)
and a log line, so each is an allowlist of characters that need no escaping in any of them and
can never form a dot segment (`.`, `..`) or an option (`-x`).
"""

from __future__ import annotations

import re

PROJECT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
PROJECT_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter, digit or '_'"
USER_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+-]{0,127}")
USER_ID_RULE = (
    "1 to 128 letters, digits, '.', '_', '@', '+' or '-', starting with a letter, digit or '_'"
)
# A memory scope: a project name, or `user:<user id>` (gateway/identity.py).
NAMESPACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@+:-]{0,191}")


def is_project_name(name: str) -> bool:
    return PROJECT_NAME.fullmatch(name) is not None


def is_user_id(user_id: str) -> bool:
    return USER_ID.fullmatch(user_id) is not None


def is_namespace(scope: str) -> bool:
    return NAMESPACE.fullmatch(scope) is not None
