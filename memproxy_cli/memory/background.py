"""Spot client housekeeping calls (Claude Code's quota probe, titles, topic checks) to skip them.

These calls get no recall (memories would only confuse a small model doing bookkeeping) and are
never stored (they are not the user's conversation). Heuristics, each cheap and specific:
- a probe: `max_tokens` of 1 or less (Claude Code's quota check sends "quota" with max_tokens 1);
- a short system prompt asking for a title, a new-topic verdict (`isNewTopic`), a bash command
  prefix or policy check, the file paths a command touches, a summary of the conversation, or
  a complexity score for the model router (Gemini CLI routes every turn with one such call)
  (housekeeping prompts are a few lines; the main agent prompt is many kilobytes and may mention
  titles or summaries in passing, so long system prompts are not searched);
- a last user message that is Claude Code's title request, topic check or compaction request.
"""

from __future__ import annotations

import re
from typing import Any

from memproxy_cli.memory.conversation import Conversation, last_turn, spoken_text

_SYSTEM_MARKERS = re.compile(
    r"isNewTopic"
    r"|\b(?:generate|write|extract|create|suggest|give)\b[^.\n]{0,60}\btitle\b"
    r"|\btitle for (?:this|the following) conversation"
    r"|process Bash commands"
    r"|\bcommand prefix\b"
    r"|file paths that this command"
    r"|(?:detailed )?summary of the conversation"
    r"|summarize (?:this|the) (?:coding )?conversation"
    r"|\bTask Routing AI\b",
    re.I,
)
_USER_MARKERS = re.compile(
    r"isNewTopic"
    r"|write a \d+-\d+ word title for the following conversation"
    r"|create a detailed summary of the conversation so far",
    re.I,
)
MAX_HOUSEKEEPING_SYSTEM_CHARS = 4000


def _is_probe(max_tokens: Any) -> bool:
    return isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens <= 1


def is_background_call(conversation: Conversation) -> bool:
    """True for housekeeping calls that must get no recall and never be remembered."""
    if _is_probe(conversation.max_tokens):
        return True
    system = conversation.system
    if len(system) <= MAX_HOUSEKEEPING_SYSTEM_CHARS and _SYSTEM_MARKERS.search(system):
        return True
    last = last_turn(conversation.messages)
    return last is not None and bool(_USER_MARKERS.search(spoken_text(last)))
