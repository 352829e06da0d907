"""Cookies are kept per origin, sent back, saved privately as JSON and reloaded after a restart."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path

from memproxy_cli import __version__
from memproxy_cli.upstream.cookies import CookieRecord, cookie_file_for, write_private_json
from memproxy_cli.upstream.sessions import SessionManager, origin_of
from tests.fixtures.fake_cloudflare import COOKIE, COOKIE_MAX_AGE, FakeCloudflare, running


async def wait_for(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Poll until the condition holds, failing after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


async def chat(manager: SessionManager, fake: FakeCloudflare) -> int:
    url = fake.url + "/v1/chat/completions"
    async with manager.session_for(url).post(url, json={"model": "gpt-4o-mini"}) as resp:
        await resp.read()
        return resp.status


async def get_json(manager: SessionManager, url: str) -> dict[str, object]:
    async with manager.session_for(url).get(url) as resp:
        data: dict[str, object] = await resp.json()
        return data


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_every_request_after_the_first_carries_the_cookie(tmp_path: Path) -> None:
    manager = SessionManager(tmp_path / "cookies", save_delay_s=60)
    async with running() as fake:
        statuses = [await chat(manager, fake) for _ in range(4)]
    await manager.close()
    assert statuses == [200, 200, 200, 200]
    assert fake.requests[0].cookies == {}
    assert [r.answer for r in fake.requests] == ["first-contact", "ok", "ok", "ok"]
    assert all(r.valid_cookie for r in fake.requests[1:])


async def test_one_session_per_origin_with_an_honest_user_agent(tmp_path: Path) -> None:
    manager = SessionManager(tmp_path / "cookies")
    async with running() as fake:
        first = manager.session_for(fake.url + "/v1/chat/completions")
        assert manager.session_for(fake.url + "/v1/models") is first
        assert manager.session_for("http://127.0.0.2:9/") is not first
        await chat(manager, fake)
    await manager.close()
    assert fake.requests[0].user_agent == f"memproxy/{__version__}"


async def test_jar_saved_with_mode_0600_and_reloaded_by_a_new_manager(tmp_path: Path) -> None:
    cookie_dir = tmp_path / "cookies"
    async with running() as fake:
        before = SessionManager(cookie_dir)
        await chat(manager=before, fake=fake)
        await before.close()
        jar_file = cookie_file_for(cookie_dir, origin_of(fake.url))
        assert mode_of(jar_file) == 0o600
        saved = json.loads(jar_file.read_text())
        (record,) = saved["clients"]["aiohttp"]
        assert record["name"] == COOKIE and record["value"] in fake.issued
        assert not record["host_only"] and record["domain"] == "127.0.0.1"
        assert time.time() < record["expires"] <= time.time() + COOKIE_MAX_AGE
        assert [p.name for p in cookie_dir.iterdir()] == [jar_file.name]

        after = SessionManager(cookie_dir)
        assert await chat(after, fake) == 200
        await after.close()
    assert fake.requests[-1].valid_cookie
    assert fake.requests[-1].answer == "ok"


async def test_new_cookies_are_saved_soon_without_a_close(tmp_path: Path) -> None:
    cookie_dir = tmp_path / "cookies"
    manager = SessionManager(cookie_dir, save_delay_s=0.05)
    async with running() as fake:
        await chat(manager, fake)
        jar_file = cookie_file_for(cookie_dir, origin_of(fake.url))
        await wait_for(jar_file.exists)
        assert mode_of(jar_file) == 0o600
        assert COOKIE in jar_file.read_text()
    await manager.close()


async def test_path_scope_survives_a_restart_and_expired_cookies_are_dropped(
    tmp_path: Path,
) -> None:
    cookie_dir = tmp_path / "cookies"
    async with running() as fake:
        before = SessionManager(cookie_dir)
        await get_json(before, fake.url + "/scoped/set")
        await before.close()
        saved = cookie_file_for(cookie_dir, origin_of(fake.url)).read_text()
        assert "scoped" in saved and "gone" not in saved

        after = SessionManager(cookie_dir)
        outside = await get_json(after, fake.url + "/other/x")
        await chat(after, fake)
        await after.close()
    assert outside["cookies"] == []
    assert "scoped" in fake.requests[-1].cookies


async def test_reload_drops_expired_records_and_foreign_domains(tmp_path: Path) -> None:
    cookie_dir = tmp_path / "cookies"
    async with running() as fake:
        origin = origin_of(fake.url)
        now = time.time()
        records = [
            CookieRecord("live", "1", "127.0.0.1", "/", now + 600, host_only=False),
            CookieRecord("session", "2", "127.0.0.1"),
            CookieRecord("stale", "3", "127.0.0.1", "/", now - 1),
            CookieRecord("foreign", "4", "evil.example", "/", now + 600, host_only=False),
            CookieRecord("redirected", "5", "other.example", "/", now + 600, host_only=True),
        ]
        data = {
            "version": 1,
            "origin": origin,
            "clients": {"aiohttp": [r.__dict__ for r in records]},
        }
        write_private_json(cookie_file_for(cookie_dir, origin), data)
        manager = SessionManager(cookie_dir)
        got = await get_json(manager, fake.url + "/other/x")
        names = [c["name"] for c in manager.snapshot()[0]["cookies"]]
        await manager.close()
    assert got["cookies"] == ["live", "session"]
    assert sorted(names) == ["live", "session"]


async def test_unreadable_jar_file_starts_empty(tmp_path: Path) -> None:
    cookie_dir = tmp_path / "cookies"
    async with running() as fake:
        jar_file = cookie_file_for(cookie_dir, origin_of(fake.url))
        jar_file.parent.mkdir(parents=True)
        jar_file.write_bytes(b"\x80\x04not json")
        manager = SessionManager(cookie_dir)
        assert await chat(manager, fake) == 200
        await manager.close()
    assert json.loads(jar_file.read_text())["clients"]["aiohttp"][0]["name"] == COOKIE


async def test_httpx_client_keeps_and_persists_its_cookies(tmp_path: Path) -> None:
    cookie_dir = tmp_path / "cookies"
    async with running() as fake:
        url = fake.url + "/v1/chat/completions"
        before = SessionManager(cookie_dir)
        client = before.httpx_client_for(url)
        assert before.httpx_client_for(fake.url + "/v1/models") is client
        for _ in range(2):
            assert (await client.post(url, json={})).status_code == 200
        (entry,) = before.snapshot()
        await before.close()
        assert client.is_closed
        saved = json.loads(cookie_file_for(cookie_dir, origin_of(url)).read_text())
        assert [r["name"] for r in saved["clients"]["httpx"]] == [COOKIE]

        after = SessionManager(cookie_dir)
        response = await after.httpx_client_for(url).post(url, json={})
        await after.close()
    assert response.status_code == 200
    assert [r.answer for r in fake.requests] == ["first-contact", "ok", "ok"]
    assert fake.requests[0].user_agent == f"memproxy/{__version__}"
    assert entry["requests"] == 2 and entry["last_status"] == 200
    assert entry["last_verdict"] == "ok"


async def test_aiohttp_and_httpx_jars_of_one_origin_do_not_overwrite_each_other(
    tmp_path: Path,
) -> None:
    cookie_dir = tmp_path / "cookies"
    async with running() as fake:
        url = fake.url + "/v1/chat/completions"
        manager = SessionManager(cookie_dir)
        await chat(manager, fake)
        await manager.close()
        jar_file = cookie_file_for(cookie_dir, origin_of(url))
        kept = json.loads(jar_file.read_text())["clients"]["aiohttp"]
        only_httpx = SessionManager(cookie_dir)
        challenged = await only_httpx.httpx_client_for(url).post(url, json={})
        await only_httpx.close()
        saved = json.loads(jar_file.read_text())
    assert challenged.status_code == 403
    assert saved["clients"] == {"aiohttp": kept, "httpx": []}
    assert only_httpx.snapshot()[0]["last_verdict"] == "challenge"
