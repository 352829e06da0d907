"""Upstreams: one light request per configured origin (list models), probed concurrently."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memproxy_cli.doctor.http_probe import Probe, http_get
from memproxy_cli.doctor.redact import safe_url
from memproxy_cli.doctor.result import CheckResult, fail, ok, skip, warn

if TYPE_CHECKING:
    from memproxy_cli.config import Config

TIMEOUT_S = 5.0
ANTHROPIC_VERSION = "2023-06-01"
_TRANSPORT_FIX = {
    "dns": "check the host name in api_base / upstreams and your DNS",
    "refused": "check the host and port in api_base / upstreams; is the server up?",
    "tls": "check the scheme (https vs http) and the server's certificate (SSL_CERT_FILE)",
    "timeout": "check the network path (VPN, firewall) to this upstream",
    "network": "check the network path to this upstream",
}


@dataclass(frozen=True)
class Target:
    base: str
    protocol: str  # openai | anthropic
    api_key: str | None
    models: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"upstream {safe_url(self.base)}"


def targets(config: Config) -> tuple[list[Target], list[str]]:
    """Distinct (base, protocol, key) to probe, and the models no light probe can reach."""
    from memproxy_cli.config import resolve_secret
    from memproxy_cli.upstream.routing import protocol_of, provider_of

    found: dict[tuple[str, str, str | None], list[str]] = {}
    unprobed: list[str] = []
    defaults = {"openai": config.upstreams.openai, "anthropic": config.upstreams.anthropic}
    for entry in config.model_list:
        params = entry.litellm_params
        provider = provider_of(params.model)[0] or "openai"
        protocol = protocol_of(provider)
        if protocol is None or protocol not in defaults:  # no light probe for Gemini yet
            unprobed.append(f"{entry.model_name} ({provider})")
            continue
        base = (params.api_base or defaults[protocol]).rstrip("/")
        found.setdefault((base, protocol, resolve_secret(params.api_key)), []).append(
            entry.model_name
        )
    for family, env in (("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")):
        key = os.environ.get(env)
        if key:
            base = defaults[family].rstrip("/")
            found.setdefault((base, family, key), []).append(f"default {family} ({env})")
    listed = [Target(b, p, k, tuple(m)) for (b, p, k), m in found.items()]
    return listed, unprobed


def check_upstreams(
    config: Config | None, offline: bool, timeout_s: float = TIMEOUT_S
) -> list[CheckResult]:
    if offline:
        return [skip("upstreams", "skipped (--offline)")]
    if config is None:
        return [skip("upstreams", "skipped: the config is invalid")]
    listed, unprobed = targets(config)
    results: list[CheckResult] = []
    if listed:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(listed))) as pool:
            results = list(pool.map(lambda t: probe_target(t, timeout_s), listed))
    if unprobed:
        results.append(skip("upstreams (LiteLLM)", "no light probe for: " + ", ".join(unprobed)))
    if not results:
        results.append(skip("upstreams", "no model_list entries and no provider key in the env"))
    return results


def probe_target(target: Target, timeout_s: float = TIMEOUT_S) -> CheckResult:
    from memproxy_cli import __version__
    from memproxy_cli.upstream.routing import join_base

    headers = {"User-Agent": f"memproxy/{__version__} (doctor)", "Accept": "application/json"}
    if target.protocol == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if target.api_key:
            headers["x-api-key"] = target.api_key
    elif target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    url = join_base(target.base, target.protocol, "/models")
    started = time.perf_counter()
    probe = http_get(url, headers, timeout_s)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return judge(target, probe, elapsed_ms)


def judge(target: Target, probe: Probe, elapsed_ms: float) -> CheckResult:
    """OK / auth error / unreachable / DNS / TLS / timeout / Cloudflare / rate limited."""
    from memproxy_cli.upstream.cloudflare import Verdict, classify

    models = ", ".join(target.models)
    if probe.status is None:
        kind = probe.error or "network"
        return fail(target.name, f"{probe.detail} [{kind}]; serves {models}", _TRANSPORT_FIX[kind])
    verdict = classify(probe.status, probe.headers, probe.body)
    if verdict.verdict == Verdict.OK:
        return ok(target.name, f"HTTP {probe.status} in {elapsed_ms:.0f} ms; serves {models}")
    if verdict.verdict == Verdict.CHALLENGE:
        return fail(
            target.name,
            f"Cloudflare challenge (HTTP {probe.status}); serves {models}",
            "the upstream wants a browser check: ask the provider to allow API clients, "
            "or call from another network",
        )
    if (
        verdict.verdict in (Verdict.RATE_LIMITED, Verdict.CF_1015, Verdict.CF_1200)
        or probe.status == 429
    ):
        return warn(
            target.name,
            f"rate limited: {verdict.message}",
            "lower the request rate and retry later",
        )
    if verdict.verdict == Verdict.BLOCKED:
        return fail(
            target.name, verdict.message, "call from another network or contact the provider"
        )
    return _http_error(target, probe.status, models)


def _http_error(target: Target, status: int, models: str) -> CheckResult:
    if status in (401, 403):
        if target.api_key:
            return fail(
                target.name,
                f"the configured key was rejected (HTTP {status}); serves {models}",
                "replace the key (litellm_params.api_key or the provider's *_API_KEY)",
            )
        return ok(
            target.name, f"reachable; needs the caller's key (HTTP {status}); serves {models}"
        )
    if status == 404:
        return warn(
            target.name,
            f"reachable, but {status} for the models list; serves {models}",
            "check api_base: OpenAI-compatible servers usually end in /v1",
        )
    return warn(
        target.name,
        f"upstream answered HTTP {status}; serves {models}",
        "retry later; if it persists, check the provider's status page",
    )
