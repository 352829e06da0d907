"""Name what an upstream answer means when Cloudflare sits in front of it.

Cheap on success: a 2xx costs a couple of header lookups. The body is looked at only for a
small non-JSON error that Cloudflare itself produced (call `needs_body` to know whether to read it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum

from multidict import CIMultiDict, CIMultiDictProxy

BODY_CAP = 32 * 1024
"""The most bytes of an error body `classify` looks at."""

_CHALLENGE_MARKERS = (
    b"<title>just a moment...</title>",
    b"cf_chl_opt",
    b"/cdn-cgi/challenge-platform/h/",
    b"__cf_chl_",
)
_ERROR_CODE = re.compile(
    rb"error code:?\s*(\d{4})|error\s+(\d{4})\b|cf-error-code\">\s*(\d{4})", re.IGNORECASE
)


class Verdict(StrEnum):
    OK = "ok"
    CHALLENGE = "challenge"
    RATE_LIMITED = "rate_limited"
    BLOCKED = "blocked"
    CF_1015 = "cf_1015"
    CF_1200 = "cf_1200"
    ERROR = "error"


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    retry_after_s: float | None
    message: str


_OK = Classification(Verdict.OK, None, "ok")
_CASE_BLIND = (CIMultiDict, CIMultiDictProxy)  # aiohttp's and our own header maps


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup that also works on plain dicts."""
    value = headers.get(name)
    if value is None and not isinstance(headers, _CASE_BLIND):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _content_type(headers: Mapping[str, str]) -> str:
    return (_header(headers, "content-type") or "").split(";", 1)[0].strip().lower()


def _is_json(headers: Mapping[str, str]) -> bool:
    ctype = _content_type(headers)
    return ctype == "application/json" or ctype.endswith("+json")


def from_cloudflare(headers: Mapping[str, str]) -> bool:
    server = (_header(headers, "server") or "").lower()
    return server == "cloudflare" or _header(headers, "cf-ray") is not None


def needs_body(status: int, headers: Mapping[str, str]) -> bool:
    """True when `classify` would look at the body: a non-JSON error from Cloudflare."""
    return status >= 400 and from_cloudflare(headers) and not _is_json(headers)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def classify(status: int, headers: Mapping[str, str], body: bytes | None) -> Classification:
    """The verdict on one upstream response, with the wait it asks for and a message for people."""
    if (_header(headers, "cf-mitigated") or "").strip().lower() == "challenge":
        return _challenge(status)
    if status < 400:
        return _OK
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    if needs_body(status, headers):
        found = _from_cloudflare_page(status, body or b"", retry_after)
        if found is not None:
            return found
    if status == 429 and retry_after is not None:
        return Classification(
            Verdict.RATE_LIMITED,
            retry_after,
            f"upstream rate limit (HTTP 429): retry after {retry_after:g} s",
        )
    return Classification(Verdict.ERROR, retry_after, f"upstream answered HTTP {status}")


def _challenge(status: int) -> Classification:
    return Classification(
        Verdict.CHALLENGE,
        None,
        f"Cloudflare challenged the request (HTTP {status}): the upstream wants a browser check "
        "that memproxy does not solve; wait for the clearance cookie to be accepted again, "
        "or ask the provider to allow API clients",
    )


def _from_cloudflare_page(
    status: int, body: bytes, retry_after: float | None
) -> Classification | None:
    page = body[:BODY_CAP].lower()
    if any(marker in page for marker in _CHALLENGE_MARKERS):
        return _challenge(status)
    match = _ERROR_CODE.search(page)
    code = next((g.decode() for g in match.groups() if g), None) if match else None
    wait = f"retry after {retry_after:g} s" if retry_after is not None else "slow down"
    if code == "1015":
        return Classification(
            Verdict.CF_1015,
            retry_after,
            f"Cloudflare error 1015: this client is rate limited by the site's Cloudflare rules; "
            f"{wait} and lower the request rate",
        )
    if code == "1200":
        return Classification(
            Verdict.CF_1200,
            retry_after,
            "Cloudflare error 1200: too many requests queued at Cloudflare for this site; "
            f"{wait} and lower the concurrency",
        )
    if status in (403, 503):
        cause = f"Cloudflare error {code}" if code else f"a Cloudflare block page (HTTP {status})"
        return Classification(
            Verdict.BLOCKED,
            retry_after,
            f"{cause}: Cloudflare refused the request before it reached the provider; "
            "check the network you call from (VPN, proxy, shared IP) or contact the provider",
        )
    return None
