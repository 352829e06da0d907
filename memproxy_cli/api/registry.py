"""Every client-facing API family, found by name or by request path.

Adding a family is one module (a subclass of `ApiFamily`) and one line here; routes, error
shapes of unknown paths and the echo model follow from it.
"""

from __future__ import annotations

from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.family import ApiFamily
from memproxy_cli.api.gemini import GEMINI
from memproxy_cli.api.openai_chat import OPENAI_CHAT
from memproxy_cli.api.openai_completions import OPENAI_COMPLETIONS
from memproxy_cli.api.openai_embeddings import OPENAI_EMBEDDINGS
from memproxy_cli.api.openai_responses import OPENAI_RESPONSES

FAMILIES: tuple[ApiFamily, ...] = (
    OPENAI_CHAT,
    ANTHROPIC_MESSAGES,
    OPENAI_EMBEDDINGS,
    OPENAI_COMPLETIONS,
    OPENAI_RESPONSES,
    GEMINI,
)
BY_NAME: dict[str, ApiFamily] = {f.name: f for f in FAMILIES}
# Longest prefix first, so /v1/messages/count_tokens finds Messages before a shorter claim.
_PREFIXES = sorted(
    ((prefix, f) for f in FAMILIES for prefix in f.path_prefixes), key=lambda p: -len(p[0])
)
DEFAULT = OPENAI_CHAT  # paths no family claims answer in OpenAI's shape


def family_for_path(path: str) -> ApiFamily:
    """The family a path belongs to (for the error shape of a path that has no route)."""
    for prefix, family in _PREFIXES:
        if path.startswith(prefix):
            return family
    return DEFAULT


def family_named(name: str) -> ApiFamily:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no API family named {name!r}") from None
