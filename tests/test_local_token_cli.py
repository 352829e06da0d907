"""`server.local_token` through the real daemon: `attach` prints the token, `run` hands it on."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from tests.fixtures.daemon import free_port, memproxy, running_daemon, write_config

# Run under `memproxy run`: call the project listener the way the tools would, from their env.
CHILD = r"""
import json, os, urllib.request, urllib.error

def post(base, path, headers):
    body = json.dumps({"model": "memproxy/echo", "max_tokens": 5,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(base + path, data=body, method="POST",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code

custom = dict(
    line.split(": ", 1) for line in os.environ["ANTHROPIC_CUSTOM_HEADERS"].splitlines()
)
print(json.dumps({
    "openai": post(os.environ["OPENAI_BASE_URL"], "/chat/completions",
                   {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}),
    "claude_code": post(os.environ["ANTHROPIC_BASE_URL"], "/v1/messages", custom),
    "without": post(os.environ["OPENAI_BASE_URL"], "/chat/completions", {}),
    "kept_header": "x-other: 1" in os.environ["ANTHROPIC_CUSTOM_HEADERS"],
    "token": os.environ["MEMPROXY_TOKEN"],
}))
"""


def test_attach_prints_and_run_passes_the_token(memproxy_home: Path) -> None:
    config = write_config(memproxy_home, server={"local_token": True})
    env = {"MEMPROXY_CONFIG": str(config), "ANTHROPIC_CUSTOM_HEADERS": "x-other: 1"}
    with running_daemon(memproxy_home, free_port(), config):
        token_file = memproxy_home / "state" / "local-token"
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        token = token_file.read_text(encoding="utf-8").strip()
        attached = json.loads(
            memproxy(memproxy_home, "attach", "webapp", "--json", env=env, check=True).stdout
        )
        assert attached["local_token"] == token
        shown = memproxy(memproxy_home, "attach", "webapp", env=env, check=True).stdout
        assert f"x-memproxy-token: {token}" in shown
        ran = memproxy(
            memproxy_home, "run", "webapp", "--", sys.executable, "-c", CHILD, env=env, check=True
        )
        result = json.loads(ran.stdout)
        assert result == {
            "openai": 200,
            "claude_code": 200,
            "without": 401,
            "kept_header": True,
            "token": token,
        }
        assert token not in (memproxy_home / "logs" / "memproxy.log").read_text(encoding="utf-8")


def test_without_the_setting_no_token_is_handed_out(memproxy_home: Path) -> None:
    config = write_config(memproxy_home)
    env = {"MEMPROXY_CONFIG": str(config)}
    with running_daemon(memproxy_home, free_port(), config):
        assert not (memproxy_home / "state" / "local-token").exists()
        attached = json.loads(
            memproxy(memproxy_home, "attach", "webapp", "--json", env=env, check=True).stdout
        )
        assert attached["local_token"] is None
        code = "import os; print(os.environ.get('MEMPROXY_TOKEN'))"
        ran = memproxy(memproxy_home, "run", "webapp", "--", sys.executable, "-c", code, env=env)
        assert ran.stdout.strip() == "None"
