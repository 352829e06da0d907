"""What every store keeps of a turn: the redacted, clipped parts, the indexed text, metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.redact import redact
from memproxy_cli.memory.turn_text import MAX_PART_CHARS, unlabeled


@dataclass(slots=True)
class StoredTurn:
    user: str
    assistant: str
    text: str  # the parts without labels: what is indexed
    metadata: dict[str, Any]


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_PART_CHARS else text[: MAX_PART_CHARS - 1].rstrip() + "…"


def stored_turn(turn: Turn) -> StoredTurn:
    user, assistant = redact(_clip(turn.user)), redact(_clip(turn.assistant))
    text, lengths = unlabeled(user, assistant, redact(turn.note))  # labels are not indexed
    metadata: dict[str, Any] = {
        k: v
        for k, v in (
            ("model", turn.model),
            ("request_id", turn.request_id),
            ("client", turn.client),
            ("dedup", turn.dedup_key),
            ("chrome_chars", turn.chrome_chars),
        )
        if v
    }
    metadata["parts"] = lengths
    metadata.update(turn.metadata)
    return StoredTurn(user, assistant, text, metadata)
