"""Upstream probes against real loopback servers: OK, auth error, Cloudflare, rate limit,
refused, TLS and timeout, each named with its fix; keys never appear in the result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memproxy_cli.config import Config, parse_config
from memproxy_cli.doctor.upstream_checks import Target, check_upstreams, probe_target, targets
from tests.fixtures.doctor_servers import GOOD_KEY, closed_port, fake_upstream, silent_server


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with fake_upstream() as url:
        yield url


def _text(result: object) -> str:
    return f"{result.found} {result.fix}"  # type: ignore[attr-defined]


def test_openai_ok_with_the_right_key(base: str) -> None:
    result = probe_target(Target(f"{base}/oai/v1", "openai", GOOD_KEY, ("m",)))
    assert result.status == "ok" and "HTTP 200" in result.found


def test_anthropic_probe_sends_key_and_version(base: str) -> None:
    assert probe_target(Target(f"{base}/ant", "anthropic", GOOD_KEY, ("c",))).status == "ok"
    rejected = probe_target(Target(f"{base}/ant", "anthropic", "wrong-key-77", ("c",)))
    assert rejected.status == "fail" and "rejected (HTTP 401)" in rejected.found


def test_auth_error_names_the_key_problem(base: str) -> None:
    result = probe_target(Target(f"{base}/oai/v1", "openai", "sk-wrong-canary-42", ("m",)))
    assert result.status == "fail"
    assert "key was rejected (HTTP 401)" in result.found
    assert "replace the key" in (result.fix or "")
    assert "sk-wrong-canary-42" not in _text(result)


def test_no_key_and_401_means_callers_bring_their_own(base: str) -> None:
    result = probe_target(Target(f"{base}/oai/v1", "openai", None, ("m",)))
    assert result.status == "ok" and "caller's key" in result.found


def test_cloudflare_challenge_is_named(base: str) -> None:
    result = probe_target(Target(f"{base}/cf/v1", "openai", GOOD_KEY, ("m",)))
    assert result.status == "fail"
    assert "Cloudflare challenge (HTTP 403)" in result.found
    assert "browser check" in (result.fix or "")


def test_rate_limit_is_a_warning(base: str) -> None:
    result = probe_target(Target(f"{base}/rate/v1", "openai", GOOD_KEY, ("m",)))
    assert result.status == "warn" and "rate limited" in result.found
    assert "retry after 7 s" in result.found


def test_refused_connection_is_named() -> None:
    result = probe_target(Target(f"http://127.0.0.1:{closed_port()}", "openai", None, ("m",)))
    assert result.status == "fail" and "[refused]" in result.found


def test_tls_to_a_plain_http_server_is_named(base: str) -> None:
    tls_base = base.replace("http:", "https:") + "/oai/v1"
    result = probe_target(Target(tls_base, "openai", None, ("m",)))
    assert result.status == "fail" and "[tls]" in result.found
    assert "https vs http" in (result.fix or "")


def test_silent_server_times_out() -> None:
    with silent_server() as port:
        result = probe_target(Target(f"http://127.0.0.1:{port}", "openai", None, ("m",)), 0.5)
    assert result.status == "fail" and "[timeout]" in result.found


def test_targets_group_models_by_origin_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-canary")
    monkeypatch.setenv("UP_KEY", "k1")
    config = parse_config(
        """
model_list:
  - model_name: a
    litellm_params: {model: openai/gpt-4o, api_base: "http://h:1/v1", api_key: os.environ/UP_KEY}
  - model_name: b
    litellm_params:
      {model: openai/gpt-4o-mini, api_base: "http://h:1/v1/", api_key: os.environ/UP_KEY}
  - model_name: g
    litellm_params: {model: gemini/gemini-2.5-pro}
"""
    )
    listed, unprobed = targets(config)
    assert Target("http://h:1/v1", "openai", "k1", ("a", "b")) in listed
    assert any(t.protocol == "anthropic" and t.base == "https://api.anthropic.com" for t in listed)
    assert unprobed == ["g (gemini)"]


def test_every_origin_is_probed_and_offline_skips(base: str) -> None:
    with silent_server() as port:
        config = Config.model_validate(
            {
                "model_list": [
                    {
                        "model_name": f"slow{i}",
                        "litellm_params": {
                            "model": f"openai/m{i}",
                            "api_base": f"http://127.0.0.1:{port}/s{i}",
                        },
                    }
                    for i in range(4)
                ]
                + [
                    {
                        "model_name": "cf",
                        "litellm_params": {"model": "openai/x", "api_base": f"{base}/cf/v1"},
                    }
                ]
            }
        )
        results = check_upstreams(config, offline=False, timeout_s=1.0)
    assert [r.status for r in results].count("fail") == 5
    assert sum("[timeout]" in r.found for r in results) == 4
    assert check_upstreams(config, offline=True)[0].status == "skip"
