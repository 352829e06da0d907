"""`may_hold_secret` (one compiled pattern) finds exactly what one substring test per fragment
finds, on every fragment and on many generated strings around them, once the four letters a
case-blind pattern takes for ASCII ones are folded as the redaction patterns fold them."""

from __future__ import annotations

import random
import re

import pytest

from memproxy_cli.memory import redact
from memproxy_cli.memory.redact import _FRAGMENTS, _alternation, may_hold_secret

FOLDS = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}


def old_scan(text: str) -> bool:
    """The scan as it was: one substring test per fragment, in lower case."""
    lowered = text.lower()
    return any(fragment in lowered for fragment in _FRAGMENTS)


def reference(text: str) -> bool:
    """The old scan, after folding what `(?i)` patterns take for i, s and k."""
    for letter, ascii_letter in FOLDS.items():
        text = text.replace(letter, ascii_letter)
    return old_scan(text)


# Characters whose lower case is not one ASCII letter, or that a case-blind regex would take
# for one (U+0130, U+0131, U+017F, U+212A): the scan must treat them as str.lower() does.
TRICKY = "\u0130\u0131\u017f\u212a\u00df\u0391\u03c3\u2126\u00c5\u00e9\u0301 \n\t\"'=:/-_"
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + TRICKY


def _mutations(fragment: str) -> list[str]:
    """Near misses and variants of one fragment."""
    out = [fragment, fragment.upper(), fragment.title(), fragment.swapcase()]
    out += [fragment[:-1], fragment[1:], fragment[: len(fragment) // 2]]
    for i in range(len(fragment)):
        out.append(fragment[:i] + fragment[i + 1 :])  # one character dropped
        out.append(fragment[:i] + " " + fragment[i:])  # split by a space
        out.append(fragment[:i] + fragment[i].upper() + fragment[i + 1 :])
    return out


def _generated(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    pieces = [m for fragment in _FRAGMENTS for m in _mutations(fragment)]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.3:
                parts.append(rng.choice(pieces))
            else:
                parts.append("".join(rng.choices(ALPHABET, k=rng.randint(0, 12))))
        texts.append("".join(parts))
    return texts


def test_every_fragment_and_its_variants() -> None:
    for fragment in _FRAGMENTS:
        for text in _mutations(fragment):
            for wrapped in (text, f"x{text}y", f"request {text}\n", f"\u0130{text}\u212a"):
                assert may_hold_secret(wrapped) is reference(wrapped), wrapped
        assert may_hold_secret(fragment)
        assert may_hold_secret(fragment.upper())


@pytest.mark.parametrize("seed", range(4))
def test_generated_strings_agree(seed: int) -> None:
    texts = _generated(seed, 5000)
    found = [may_hold_secret(t) for t in texts]
    assert found == [reference(t) for t in texts]
    assert any(found) and not all(found)  # both outcomes are exercised


def test_unicode_case_is_the_patterns_case() -> None:
    # "\u212a" (Kelvin sign) lowers to "k": "s\u212a-" holds "sk-" as str.lower() sees it.
    assert may_hold_secret("s\u212a-abc") is reference("s\u212a-abc") is True
    assert may_hold_secret("") is reference("") is False
    assert not may_hold_secret("plain words, \u00e9t\u00e9 \u0391")


@pytest.mark.parametrize("seed", range(2))
def test_it_finds_at_least_what_the_old_scan_found(seed: int) -> None:
    for text in _generated(100 + seed, 5000):
        assert may_hold_secret(text) or not old_scan(text), text


@pytest.mark.parametrize(
    "text",
    ["AP\u0130_KEY=abcdef1234567890", "pa\u017f\u017fword=hunter22", "\u017fecret: hunter22"],
)
def test_letters_a_case_blind_pattern_folds_are_redacted(text: str) -> None:
    """The patterns are case-blind, so they take these letters for i and s: the scan in front
    of them must too, or the secret would be kept."""
    assert may_hold_secret(text)
    assert "hunter22" not in redact.redact(text) and "abcdef1234567890" not in redact.redact(text)


def test_alternation_is_a_search_for_any_word() -> None:
    words = ("ab", "abc", "b-d", "x.y", "q")
    search = re.compile(_alternation(words)).search
    for text in ("", "a", "zab", "b-d", "bxd", "x.y", "xzy", "Q", "q", "abq"):
        assert (search(text) is not None) is any(w in text for w in words), text
    assert redact._FRAGMENT_SEARCH("a" * 1000) is None
