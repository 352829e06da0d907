"""Clearance survives a process restart: a new process sends the cookie the old one received."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.fake_cloudflare import serve_in_thread

# One short-lived "daemon": open the session, make one call, save and exit.
ONE_CALL = """
import asyncio, sys
from memproxy_cli.paths import get_paths
from memproxy_cli.upstream.sessions import SessionManager

async def main(url: str) -> None:
    manager = SessionManager(get_paths().ensure().cookie_dir)
    async with manager.session_for(url).post(url, json={}) as resp:
        print(resp.status)
    await manager.close()

asyncio.run(main(sys.argv[1]))
"""


def one_call_in_a_new_process(url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", ONE_CALL, url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_cookie_survives_a_process_restart() -> None:
    with serve_in_thread() as fake:
        url = fake.url + "/v1/chat/completions"
        assert one_call_in_a_new_process(url) == "200"
        assert not fake.cookie_kept()
        assert one_call_in_a_new_process(url) == "200"
        assert fake.cookie_kept()
    assert [r.answer for r in fake.api_requests()] == ["first-contact", "ok"]


def test_without_the_jar_file_a_restarted_client_is_challenged() -> None:
    from memproxy_cli.paths import get_paths

    with serve_in_thread() as fake:
        url = fake.url + "/v1/chat/completions"
        assert one_call_in_a_new_process(url) == "200"
        for jar_file in get_paths().cookie_dir.glob("*.json"):
            jar_file.unlink()
        assert one_call_in_a_new_process(url) == "403"
    assert [r.answer for r in fake.api_requests()] == ["first-contact", "challenge"]
