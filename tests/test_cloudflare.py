"""The Cloudflare classifier, on hand-built answers and on real answers from the fake upstream."""

from __future__ import annotations

import time
from email.utils import formatdate
from pathlib import Path

import pytest

from memproxy_cli.upstream.cloudflare import (
    BODY_CAP,
    Verdict,
    classify,
    needs_body,
    parse_retry_after,
)
from memproxy_cli.upstream.sessions import SessionManager
from tests.fixtures.fake_cloudflare import (
    BLOCK_PAGE,
    CF_HEADERS,
    CHALLENGE_PAGE,
    FakeCloudflare,
    running,
)

HTML = {**CF_HEADERS, "content-type": "text/html; charset=UTF-8"}
JSON = {**CF_HEADERS, "content-type": "application/json"}


def test_json_200_behind_cloudflare_is_ok() -> None:
    result = classify(200, JSON, None)
    assert result.verdict is Verdict.OK
    assert result.retry_after_s is None


def test_2xx_never_reads_the_body() -> None:
    assert not needs_body(200, HTML)
    assert classify(200, HTML, CHALLENGE_PAGE.encode()).verdict is Verdict.OK


def test_cf_mitigated_header_is_a_challenge_whatever_the_status() -> None:
    headers = {**HTML, "cf-mitigated": "challenge"}
    for status in (403, 503, 200):
        result = classify(status, headers, None)
        assert result.verdict is Verdict.CHALLENGE
        assert "challenge" in result.message.lower()


def test_challenge_page_without_the_header_is_still_a_challenge() -> None:
    assert classify(403, HTML, CHALLENGE_PAGE.encode()).verdict is Verdict.CHALLENGE


def test_html_403_from_cloudflare_is_blocked_and_names_the_error_code() -> None:
    result = classify(403, HTML, BLOCK_PAGE.encode())
    assert result.verdict is Verdict.BLOCKED
    assert "1020" in result.message


def test_html_503_from_cloudflare_is_blocked() -> None:
    result = classify(503, HTML, b"<html><title>503 Service Unavailable</title></html>")
    assert result.verdict is Verdict.BLOCKED
    assert "503" in result.message


def test_error_1015_and_1200_in_plain_text_and_html() -> None:
    assert classify(429, HTML, b"<h1>Error 1015</h1>").verdict is Verdict.CF_1015
    plain = {**CF_HEADERS, "content-type": "text/plain"}
    assert classify(429, plain, b"error code: 1015").verdict is Verdict.CF_1015
    assert classify(429, plain, b"error code: 1200").verdict is Verdict.CF_1200
    assert classify(503, HTML, b"<title>Error 1200</title>").verdict is Verdict.CF_1200


def test_1015_keeps_the_retry_after_it_came_with() -> None:
    result = classify(429, {**HTML, "Retry-After": "30"}, b"error code: 1015")
    assert result.verdict is Verdict.CF_1015
    assert result.retry_after_s == 30.0


def test_429_with_retry_after_is_rate_limited() -> None:
    result = classify(429, {**JSON, "retry-after": "12"}, b'{"error": {}}')
    assert result.verdict is Verdict.RATE_LIMITED
    assert result.retry_after_s == 12.0
    assert "12" in result.message


def test_429_without_retry_after_is_an_origin_error() -> None:
    assert classify(429, JSON, None).verdict is Verdict.ERROR


def test_json_errors_from_the_origin_are_not_cloudflare() -> None:
    for status in (400, 401, 403, 500, 503):
        assert not needs_body(status, JSON)
        result = classify(status, JSON, b'{"error": "error code: 1015 Just a moment..."}')
        assert result.verdict is Verdict.ERROR, status


def test_html_error_not_from_cloudflare_is_an_origin_error() -> None:
    headers = {"content-type": "text/html", "server": "nginx"}
    assert not needs_body(403, headers)
    assert classify(403, headers, CHALLENGE_PAGE.encode()).verdict is Verdict.ERROR


def test_markers_past_the_body_cap_are_ignored() -> None:
    body = b" " * BODY_CAP + b"error code: 1015"
    assert classify(403, HTML, body).verdict is Verdict.BLOCKED


def test_header_names_are_case_insensitive_in_plain_dicts() -> None:
    headers = {"Server": "cloudflare", "Content-Type": "text/html", "CF-Mitigated": "challenge"}
    assert classify(403, headers, None).verdict is Verdict.CHALLENGE


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    now = time.time()
    in_a_minute = formatdate(now + 60, usegmt=True)
    parsed = parse_retry_after(in_a_minute, now=now)
    assert parsed is not None and 58 <= parsed <= 61
    assert parse_retry_after(formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("nan") is None


async def _fetch(manager: SessionManager, url: str) -> tuple[int, Verdict, float | None]:
    async with manager.session_for(url).get(url) as resp:
        body = await resp.content.read(BODY_CAP) if needs_body(resp.status, resp.headers) else None
        result = classify(resp.status, resp.headers, body)
        manager.record(url, resp.status, resp.headers, result.verdict)
        return resp.status, result.verdict, result.retry_after_s


@pytest.mark.parametrize(
    ("path", "status", "verdict", "retry_after"),
    [
        ("/cf/json-ok", 200, Verdict.OK, None),
        ("/cf/block", 403, Verdict.BLOCKED, None),
        ("/cf/unavailable", 503, Verdict.BLOCKED, None),
        ("/cf/1015", 429, Verdict.CF_1015, 30.0),
        ("/cf/1200", 429, Verdict.CF_1200, None),
        ("/cf/ratelimit", 429, Verdict.RATE_LIMITED, 7.0),
        ("/cf/challenge-page", 403, Verdict.CHALLENGE, None),
        ("/cf/origin-error", 500, Verdict.ERROR, None),
    ],
)
async def test_fake_upstream_answers_are_classified_and_recorded(
    tmp_path: Path, path: str, status: int, verdict: Verdict, retry_after: float | None
) -> None:
    manager = SessionManager(tmp_path / "cookies", save_delay_s=60)
    async with running() as fake:
        got = await _fetch(manager, fake.url + path)
        assert got == (status, verdict, retry_after)
        (entry,) = manager.snapshot()
        assert entry["last_status"] == status
        assert entry["last_verdict"] == verdict.value
        assert entry["requests"] == 1
    await manager.close()


async def test_cookie_less_repeat_client_is_challenged(tmp_path: Path) -> None:
    import aiohttp

    async with (
        running(FakeCloudflare()) as fake,
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as forgetful,
    ):
        url = fake.url + "/v1/chat/completions"
        async with forgetful.post(url, json={}) as first:
            assert first.status == 200
        async with forgetful.post(url, json={}) as second:
            body = await second.read()
            result = classify(second.status, second.headers, body)
    assert result.verdict is Verdict.CHALLENGE
    assert second.headers["cf-mitigated"] == "challenge"
