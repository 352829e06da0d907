"""Seed canary secrets, drive every error path of the real daemon, then grep all it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.daemon import ThreadedFake, free_port, memproxy, write_config
from tests.fixtures.fake_upstreams import FakeProvider

pytestmark = pytest.mark.serial

PROVIDER_KEY = "sk-ant-api03-canaryPROVIDERkey0000aaaa"  # from the config, via os.environ/
CLIENT_KEY = "canary-client-bearer-1111bbbb"  # does not look like any known key format
XAPI_KEY = "canary-x-api-key-2222cccc"
COOKIE_VALUE = "canarycookievalue3333dddd"
PROMPT_KEY = "sk-proj-canaryPROMPTkey4444eeeeffff"  # a key pasted into a prompt
CANARIES = {
    "provider": PROVIDER_KEY,
    "client": CLIENT_KEY,
    "x-api-key": XAPI_KEY,
    "cookie": COOKIE_VALUE,
    "prompt": PROMPT_KEY,
}
ENV = {"CANARY_PROVIDER_KEY": PROVIDER_KEY}

OK_BODY = json.dumps(
    {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


def _echo_401(key: str) -> bytes:
    """What providers do with a key they reject: quote it back."""
    return json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()


CHALLENGE = b"<html><head><title>Just a moment...</title></head><body>cf</body></html>"


def _chat(content: str = "hi", model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


class Recorder:
    """Keeps every response the clients saw, headers and bodies."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def keep(self, resp: httpx.Response) -> httpx.Response:
        self.seen.append(f"{resp.status_code} {dict(resp.headers)} {resp.text}")
        return resp


def _drive(url: str, fake: FakeProvider, out: Recorder) -> None:
    bearer = {"Authorization": f"Bearer {CLIENT_KEY}"}
    xapi = {"x-api-key": XAPI_KEY, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=url, timeout=30) as http:
        post = http.post

        def both(body: dict[str, Any]) -> None:
            out.keep(post("/v1/chat/completions", headers=bearer, json=body))
            claude = {**body, "model": "claude-test-1", "max_tokens": 10}
            out.keep(post("/v1/messages", headers=xapi, json=claude))

        # Success, with a secret in the prompt (memory is on: the turn gets stored).
        both(_chat(f"remember my deploy key {PROMPT_KEY} please"))
        out.keep(post("/v1/chat/completions", headers=bearer, json=_chat(model="canary-model")))
        # Bad JSON, wrong shapes, unknown model, forbidden field.
        out.keep(post("/v1/chat/completions", headers=bearer, content=b"{not json"))
        out.keep(post("/v1/messages", headers=xapi, content=b"[1, 2"))
        both({"model": 3, "messages": "x"})
        out.keep(post("/v1/messages", headers=xapi, json=_chat(model="no-such-model-anywhere")))
        out.keep(post("/v1/chat/completions", headers=bearer, json=_chat(model="no-such-model")))
        both(_chat(api_key=PROVIDER_KEY))
        out.keep(post("/v1/messages/count_tokens", headers=xapi, json=_chat(model="claude-x")))
        # The upstream sets a cookie.
        b = fake.behaviour
        b.fail_status, b.fail_body, b.fail_times = 200, OK_BODY, 1
        b.fail_headers = {"Set-Cookie": f"upsess={COOKIE_VALUE}; Path=/; Max-Age=3600"}
        out.keep(post("/v1/chat/completions", headers=bearer, json=_chat()))
        b.fail_headers, b.fail_times = {}, None
        # Upstream 401 echoing the keys, 500, a Cloudflare challenge.
        b.fail_status, b.fail_body = 401, _echo_401(CLIENT_KEY)
        out.keep(post("/v1/chat/completions", headers=bearer, json=_chat()))
        b.fail_body = _echo_401(XAPI_KEY)
        out.keep(post("/v1/messages", headers=xapi, json=_chat("x", "claude-test-1", max_tokens=5)))
        out.keep(post("/v1/messages/count_tokens", headers=xapi, json=_chat(model="claude-x")))
        b.fail_body = _echo_401(PROVIDER_KEY)
        out.keep(post("/v1/chat/completions", headers=bearer, json=_chat(model="canary-model")))
        b.fail_status, b.fail_body = 500, None
        both(_chat())
        b.fail_status, b.fail_body, b.fail_content_type = 403, CHALLENGE, "text/html"
        b.fail_headers = {"cf-mitigated": "challenge", "server": "cloudflare"}
        both(_chat())
        b.fail_status, b.fail_headers, b.fail_content_type = None, {}, "application/json"
        # A stalled upstream (timeout) and a client that walks away mid-stream.
        b.hang_after_chunks = 2
        both(_chat(stream=True))
        b.hang_after_chunks, b.chunk_delay_s, b.chunks = None, 0.2, 10
        with http.stream(
            "POST", "/v1/chat/completions", headers=bearer, json=_chat(stream=True)
        ) as resp:
            next(resp.iter_bytes())
        b.chunk_delay_s, b.chunks = 0.0, 4


def _files_with(home: Path, secret: str, skip: set[Path]) -> list[str]:
    needle = secret.encode()
    return [
        str(p.relative_to(home))
        for p in sorted(home.rglob("*"))
        if p.is_file() and p not in skip and needle in p.read_bytes()
    ]


def test_canaries_never_leak(memproxy_home: Path) -> None:
    out = Recorder()
    with ThreadedFake() as fake:
        config = write_config(
            memproxy_home,
            fake.base,
            server={"stream_idle_timeout_s": 1, "max_retries": 0},
            memory={"backend": "local"},
            model_list=[
                {
                    "model_name": "canary-model",
                    "litellm_params": {
                        "model": "openai/gpt-4o-mini",
                        "api_base": fake.base + "/v1",
                        "api_key": "os.environ/CANARY_PROVIDER_KEY",
                    },
                }
            ],
        )
        env = {**ENV, "MEMPROXY_CONFIG": str(config)}
        memproxy(memproxy_home, "up", f"--port={free_port()}", env=env, check=True)
        try:
            url = json.loads(memproxy(memproxy_home, "status", "--json", check=True).stdout)["url"]
            _drive(url, fake, out)
            seen_keys = [s.headers.get("authorization", "") for s in fake.seen]
            assert f"Bearer {PROVIDER_KEY}" in seen_keys  # the canary really was in use
            for args in (("doctor",), ("doctor", "--json"), ("sessions", "--json")):
                result = memproxy(memproxy_home, *args, env=env)
                out.seen.append(result.stdout + result.stderr)
        finally:
            memproxy(memproxy_home, "down", env=env)
    for args in (("logs", "--json", "-n", "200"), ("spend", "--json")):
        result = memproxy(memproxy_home, *args, env=env)
        out.seen.append(result.stdout + result.stderr)
    rows = json.loads(memproxy(memproxy_home, "logs", "--json", "-n", "200").stdout)
    assert len(rows) >= 20 and {r["status"] for r in rows} >= {"ok", "error", "upstream_timeout"}
    jars = set((memproxy_home / "state" / "cookies").glob("*.json"))
    assert (
        _files_with(memproxy_home, COOKIE_VALUE, set())
        == [
            str(p.relative_to(memproxy_home)) for p in sorted(jars) if COOKIE_VALUE in p.read_text()
        ]
        != []
    ), "the cookie jar must hold the cookie value, and nothing else may"
    leaks = {
        name: found
        for name, secret in CANARIES.items()
        if (found := _files_with(memproxy_home, secret, jars))
    }
    assert not leaks, f"secrets written to disk: {leaks}"
    said = "\n".join(out.seen)
    leaked = [name for name, secret in CANARIES.items() if secret in said]
    assert not leaked, f"secrets in responses or CLI output: {leaked}"


def test_log_lines_redact_configured_secrets_and_nested_extras(tmp_path: Path) -> None:
    import logging

    from memproxy_cli.config import parse_config
    from memproxy_cli.daemon.logs import config_secrets, register_secrets, setup_logging

    config = parse_config("server:\n  master_key: plain-master-key-5555\n", "c.yaml")
    register_secrets(config_secrets(config.model_dump()))
    log_file = tmp_path / "x.log"
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    setup_logging(log_file)
    try:
        logging.getLogger("t").warning(
            "saw %s", "plain-master-key-5555", extra={"nested": {"k": PROMPT_KEY}}
        )
        text = log_file.read_text()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
    assert "saw [REDACTED]" in text
    assert PROMPT_KEY not in text and "plain-master-key-5555" not in text
