"""Turn a natural-language question into an FTS5 MATCH expression (OR of quoted prefix terms)."""

from __future__ import annotations

import re

MAX_TERMS = 24
MIN_PREFIX_LEN = 3

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

_STOP_WORDS_TEXT = """
    a about above after again against all am an and any are aren as at be because been before
    being below between both but by can cannot could couldn did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers herself
    him himself his how i if in into is isn it its itself just let me more most my myself no nor
    not now of off on once only or other ought our ours ourselves out over own same shan she
    should shouldn so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was wasn we were weren what when where which
    while who whom why will with won would wouldn you your yours yourself yourselves
    also please tell know remember recall us ll ve re d s t m o y
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def query_terms(text: str, max_terms: int = MAX_TERMS) -> list[str]:
    """Lowercased words of `text` without stop words or repeats, in order, at most `max_terms`."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS and word not in seen:
            seen[word] = None
            if len(seen) >= max_terms:
                break
    return list(seen)


def term_expression(term: str) -> str:
    """One quoted term, prefix-matched when long enough to be selective."""
    return f'"{term}"*' if len(term) >= MIN_PREFIX_LEN else f'"{term}"'


def match_expression(text: str | list[str]) -> str | None:
    """`"term"* OR "other"*`, or None when nothing searchable is left (only stop words)."""
    terms = query_terms(text) if isinstance(text, str) else text
    if not terms:
        return None
    return " OR ".join(term_expression(t) for t in terms)
