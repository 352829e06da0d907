"""Replace secrets in text with `[REDACTED:<kind>]` before anything is stored or logged."""

from __future__ import annotations

import re
from typing import Any

# Order matters: specific prefixes before generic ones (sk-ant- before sk-), PEM blocks first.
_TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        ),
    ),
    ("anthropic", re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}")),
    (
        "stripe",
        re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|\bwhsec_[A-Za-z0-9]{20,}"),
    ),
    ("openai", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}")),
    ("google", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    ("github", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{22,}")),
    ("slack", re.compile(r"\bxox[bpoasr]-[A-Za-z0-9\-]{10,}")),
    ("huggingface", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("supermemory", re.compile(r"\bsm_[A-Za-z0-9_\-]{20,}")),
    ("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
)

_NOT_REDACTED = r"(?!\[REDACTED)"

# Patterns that keep their context (the key name, the user name) and hide only the value.
_AWS_SECRET = re.compile(
    r"(?i)(aws_secret_access_key[\"']?\s*[:=]\s*[\"']?)" + _NOT_REDACTED + r"[A-Za-z0-9/+=]{20,}"
)
_BEARER = re.compile(r"(?i)\b(bearer\s+)" + _NOT_REDACTED + r"[A-Za-z0-9\-._~+/]{8,}=*")
_URL_PASSWORD = re.compile(
    r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]+:)" + _NOT_REDACTED + r"[^\s@/]+(@)"
)
_ASSIGNMENT = re.compile(
    r"(?i)\b([\w.\-]*(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token"
    r"|auth[_\-]?token|client[_\-]?secret)[\w.\-]*[\"']?\s*[:=]\s*[\"']?)"
    + _NOT_REDACTED
    + r"[^\s\"',;}]{3,}"
)

_SECRET_KEY_NAMES = re.compile(
    r"(?i)^(authorization|proxy-authorization|x-api-key|api[_\-]?key|cookie|set-cookie"
    r"|password|secret|token|access[_\-]?token|client[_\-]?secret)$"
)


# Every pattern above needs one of these fragments (compared in lower case): a few substring
# tests clear most text (log lines, ordinary turns) instead of fourteen regex substitutions.
_FRAGMENTS = (
    "private key",
    "sk-",
    "sk_",
    "rk_",
    "pk_",
    "whsec_",
    "aiza",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "hf_",
    "sm_",
    "akia",
    "asia",
    "aws_secret",
    "bearer",
    "://",
    "passw",
    "pwd",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "accesstoken",
    "access_token",
    "access-token",
    "authtoken",
    "auth_token",
    "auth-token",
)


def _alternation(words: tuple[str, ...]) -> str:
    """A regex that matches where any of `words` starts, as a prefix tree: `sre` then follows
    one branch per character instead of trying every word at every position. A word that has
    a shorter one of the set as its prefix adds nothing to a search and is left out."""
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def branch(node: dict[str, Any]) -> str:
        if "" in node:  # a whole word ends here: what follows cannot matter
            return ""
        alts = [re.escape(char) + branch(child) for char, child in sorted(node.items())]
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return branch(tree)


_FRAGMENT_SEARCH = re.compile(_alternation(_FRAGMENTS)).search


# The four letters that Python's case-blind patterns (the `(?i)` ones above) take for ASCII
# ones, as `str.lower()` does not: U+0130 and U+0131 for i, U+017F for s, U+212A for k.
_CASE_BLIND_FOLDS = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def may_hold_secret(text: str) -> bool:
    """Whether `text`, in lower case, contains any of `_FRAGMENTS`: one pass of one compiled
    pattern (about half the CPU of one substring test per fragment on a log line). Text that is
    not ASCII is first folded as the patterns fold it, so "AP\u0130_KEY=..." is redacted too."""
    lowered = text.lower()
    if not lowered.isascii():
        lowered = text.translate(_CASE_BLIND_FOLDS).lower()
    return _FRAGMENT_SEARCH(lowered) is not None


def redact(text: str) -> str:
    """Return `text` with every recognised secret replaced by `[REDACTED:<kind>]`."""
    if not text or not may_hold_secret(text):
        return text
    for kind, pattern in _TOKEN_PATTERNS:
        text = pattern.sub(f"[REDACTED:{kind}]", text)
    text = _AWS_SECRET.sub(r"\1[REDACTED:aws_secret]", text)
    text = _BEARER.sub(r"\1[REDACTED:bearer]", text)
    text = _URL_PASSWORD.sub(r"\1[REDACTED]\2", text)
    return _ASSIGNMENT.sub(r"\1[REDACTED:secret]", text)


# Longer than any secret the patterns match (a PEM private key block is a few KB): redacting
# this much past the part that is kept still sees whole every secret that starts in that part.
CLIP_MARGIN = 16_384


def redact_prefix(text: str, keep: int) -> str:
    """`redact` of what is kept of `text`, its first `keep` characters (leading space aside).

    The result may run past `keep`; the caller clips it. A 20 MB message costs what 20 KB does.
    """
    return redact(text.lstrip()[: keep + CLIP_MARGIN])


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like value with secrets redacted in strings and secret-named keys."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {
            k: "[REDACTED]"
            if isinstance(k, str) and _SECRET_KEY_NAMES.match(k) and v
            else redact_obj(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj
