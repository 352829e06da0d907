"""`memproxy sessions` and `memproxy status` against the real daemon: live cooldowns at once,
the snapshot when the daemon is down."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from memproxy_cli.upstream.deployments import key_tag
from tests.fixtures.daemon import ThreadedFake, free_port, memproxy, running_daemon, write_config

MESSAGES: Any = [{"role": "user", "content": "hi"}]
KEY = "sk-caller-alice-0001"


@pytest.mark.serial
def test_sessions_and_status_show_a_cooldown_right_after_the_429(memproxy_home: Path) -> None:
    with ThreadedFake() as fake:
        b = fake.behaviour
        b.fail_status, b.fail_times, b.fail_headers = 429, 1, {"Retry-After": "120"}
        base = fake.base
        config = write_config(memproxy_home, base, memory={"backend": "none"})
        with running_daemon(memproxy_home, free_port(), config) as status:
            client = openai.OpenAI(base_url=status["url"] + "/v1", api_key=KEY, max_retries=0)
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            listed = json.loads(memproxy(memproxy_home, "sessions", "--json", check=True).stdout)
            table = memproxy(memproxy_home, "sessions", check=True).stdout
            live = json.loads(memproxy(memproxy_home, "status", "--json", check=True).stdout)
            status_text = memproxy(memproxy_home, "status", check=True).stdout
        after = json.loads(memproxy(memproxy_home, "sessions", "--json", check=True).stdout)
    [entry] = listed
    assert entry["origin"] == base and entry["requests"] == 1
    assert entry["last_status"] == 429  # the daemon's live count, not a snapshot yet to come
    [cooldown] = entry["cooldowns"]
    assert cooldown["deployment"] == "gpt-4o-mini" and cooldown["model"] == "gpt-4o-mini"
    assert cooldown["key_hash"] == key_tag(KEY) and cooldown["reason"] == "429"
    assert 60 < cooldown["seconds_left"] <= 120
    assert entry["backed_off_until"] == cooldown["until"]
    assert KEY not in json.dumps(listed) and KEY not in table
    assert "gpt-4o-mini" in table and key_tag(KEY) in table
    assert [c["deployment"] for c in live["cooldowns"]] == ["gpt-4o-mini"]
    assert "cooldowns" in status_text and "gpt-4o-mini" in status_text
    [stopped] = after  # the daemon is down: its snapshot, where nothing is cooling
    assert stopped["origin"] == base and stopped["requests"] == 1
    assert stopped["cooldowns"] == [] and stopped["backed_off_until"] is None
