"""Query strategies (what to search for) and injection strategies (where memories go).

Defaults when `injection_strategy` is unset: both APIs get `user_suffix`, the memories appended
to the LAST user message. For Anthropic that is a new text block at the end of the last user
turn (a str content becomes a list of blocks); `system` and every earlier message stay
byte-identical, so the client's prompt-cache prefix is untouched. For OpenAI a str content gets
the block appended after a blank line and a list content gets a new text part, which keeps the
provider's automatic prefix caching intact too.
Explicit `system`: Anthropic appends a block at the END of `system`; OpenAI inserts a system
message right after the leading system/developer messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memproxy_cli.config import InjectionStrategy, QueryStrategy
from memproxy_cli.memory.backend import Memory
from memproxy_cli.memory.background import is_background_call
from memproxy_cli.memory.conversation import Api, Body, all_texts, messages, user_texts
from memproxy_cli.memory.turn_text import user_part

__all__ = [
    "build_query",
    "drop_present",
    "inject",
    "is_background_call",
    "render_block",
]

BLOCK_OPEN = "<memproxy-memories>\nRelevant notes from earlier sessions of this project:\n"
BLOCK_CLOSE = "</memproxy-memories>"
MIN_USER_PART_CHARS = 12  # shorter user parts ("ok", "thanks") would match everywhere
MIN_TRUNCATED_CHARS = 120


def build_query(body: Body, strategy: QueryStrategy, n: int = 3) -> str:
    """The search text; the newest user text comes first (query terms are capped in order)."""
    texts = user_texts(body)
    if not texts:
        return ""
    if strategy == "first_user":
        return texts[0]
    if strategy == "all_user":
        return "\n".join(reversed(texts))
    if strategy == "last_n":
        return "\n".join(reversed(texts[-n:]))
    return texts[-1]


def _norm(text: str) -> str:
    """Whitespace runs as one space, no leading or trailing space, lower case."""
    return " ".join(text.split()).lower()  # str.split() splits on what regex \s matches


def drop_present(memories: Sequence[Memory], api: Api, body: Body) -> list[Memory]:
    """Memories whose text is already in the request, or whose user part is in an earlier
    message, are not injected again (the new user message itself does not count, so asking a
    question again in a new conversation still recalls the earlier answer)."""
    normalized: dict[str, str] = {}  # most texts are in both lists: normalize each once

    def norm(text: str) -> str:
        found = normalized.get(text)
        if found is None:
            found = normalized[text] = _norm(text)
        return found

    everything = "\x00".join(norm(t) for t in all_texts(api, body))
    msgs = messages(body)
    earlier = "\x00".join(norm(t) for t in all_texts(api, {**body, "messages": msgs[:-1]}))
    kept = []
    for memory in memories:
        if _norm(memory.text) in everything:
            continue
        user = _norm(user_part(memory.text) or "")
        if len(user) >= MIN_USER_PART_CHARS and user in earlier:
            continue
        kept.append(memory)
    return kept


def _item(memory: Memory) -> str:
    return "- " + memory.text.strip().replace("\n", "\n  ") + "\n"


def render_block(memories: Sequence[Memory], top_k: int, max_chars: int) -> tuple[str, int]:
    """The delimited block and how many memories it holds; never longer than `max_chars`.

    Memories go in whole, in rank order, skipping any that does not fit; when one does not
    fit and there is still room for a useful part of it, it goes in cut short and the block ends.
    """
    budget = max_chars - len(BLOCK_OPEN) - len(BLOCK_CLOSE)
    items: list[str] = []
    for memory in memories[:top_k]:
        item = _item(memory)
        if len(item) <= budget:
            items.append(item)
            budget -= len(item)
        elif budget >= MIN_TRUNCATED_CHARS:
            items.append(item[: budget - 2].rstrip() + "…\n")
            break
    if not items:
        return "", 0
    return BLOCK_OPEN + "".join(items) + BLOCK_CLOSE, len(items)


def inject(api: Api, body: Body, block: str, strategy: InjectionStrategy | None) -> None:
    """Put `block` into `body` in place, where `strategy` says (see the module docstring)."""
    if strategy == "system":
        _inject_system(api, body, block)
        return
    msgs = messages(body)
    last = next((m for m in reversed(msgs) if m.get("role") == "user"), None)
    if last is None:
        return
    prefix = strategy == "user_prefix"
    if api == "anthropic":
        _add_block(last, {"type": "text", "text": block}, prefix)
    elif isinstance(last.get("content"), str):
        text = last["content"]
        last["content"] = f"{block}\n\n{text}" if prefix else f"{text}\n\n{block}"
    else:
        _add_block(last, {"type": "text", "text": block}, prefix)


def _add_block(message: dict[str, Any], block: dict[str, Any], prefix: bool) -> None:
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    elif not isinstance(content, list):
        content = []
    content = [block, *content] if prefix else [*content, block]
    message["content"] = content


def _inject_system(api: Api, body: Body, block: str) -> None:
    if api == "anthropic":
        system = body.get("system")
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) and system else []
        if isinstance(system, list):
            blocks = list(system)
        body["system"] = [*blocks, {"type": "text", "text": block}]
        return
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return
    at = 0
    while at < len(msgs) and isinstance(msgs[at], dict):
        if msgs[at].get("role") not in ("system", "developer"):
            break
        at += 1
    msgs.insert(at, {"role": "system", "content": block})
