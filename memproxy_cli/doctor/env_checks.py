"""Environment variables that silently change where calls go or how they authenticate."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from memproxy_cli.doctor.redact import safe_url
from memproxy_cli.doctor.result import CheckResult, fail, ok, warn

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
BASE_URL_VARS = {
    "OPENAI_BASE_URL": "the OpenAI SDKs (openai-python 1.x, openai-node), Codex CLI, Aider",
    "OPENAI_API_BASE": "openai-python 0.x, LangChain and LiteLLM-based tools",
    "ANTHROPIC_BASE_URL": "Claude Code and the Anthropic SDKs",
}
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
# LiteLLM reads these at import or per call; each changes what the daemon's LiteLLM path does.
LITELLM_OVERRIDES = {
    "LITELLM_MODEL_COST_MAP_URL": "prices come from this URL instead of the bundled map",
    "LITELLM_LOCAL_MODEL_COST_MAP": "not 'True': LiteLLM fetches its price map over the network",
    "LITELLM_MODIFY_PARAMS": "LiteLLM rewrites request parameters before sending",
    "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "Anthropic calls change endpoint",
    "LITELLM_USER_AGENT": "upstreams see another User-Agent than memproxy's",
    "LITELLM_LOG": "DEBUG logging prints request bodies and headers",
    "LITELLM_MODE": "'DEV' makes LiteLLM load a .env file that may override provider keys",
}


def check_environment(
    gateway_ports: set[int], env: Mapping[str, str] | None = None
) -> list[CheckResult]:
    env = os.environ if env is None else env
    results = [base_url_target(name, gateway_ports, env) for name in BASE_URL_VARS]
    results.append(openai_bases_agree(env))
    results.append(proxy_bypasses_loopback(env))
    results.append(litellm_overrides(env))
    return results


def _points_at_gateway(url: str, gateway_ports: set[int]) -> bool:
    try:
        parts = urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return (parts.hostname or "") in LOOPBACK and port in gateway_ports


def base_url_target(name: str, gateway_ports: set[int], env: Mapping[str, str]) -> CheckResult:
    check = f"env {name}"
    value = env.get(name)
    if not value:
        return ok(check, "not set")
    if _points_at_gateway(value, gateway_ports):
        return ok(check, f"points at this gateway ({safe_url(value)})")
    return warn(
        check,
        f"{name} points at {safe_url(value)}, not at this gateway: calls from "
        f"{BASE_URL_VARS[name]} started in this shell bypass memproxy",
        f"unset {name}, or use `memproxy run PROJECT -- CMD` which sets it for one command",
    )


def openai_bases_agree(env: Mapping[str, str]) -> CheckResult:
    new, old = env.get("OPENAI_BASE_URL"), env.get("OPENAI_API_BASE")
    if not (new and old) or new.rstrip("/") == old.rstrip("/"):
        return ok("env OpenAI bases", "OPENAI_BASE_URL and OPENAI_API_BASE agree (or one is unset)")
    return warn(
        "env OpenAI bases",
        f"OPENAI_BASE_URL is {safe_url(new)} but OPENAI_API_BASE is {safe_url(old)}: "
        "tools disagree on where calls go depending on which one they read",
        "unset one of them, or set both to the same URL",
    )


def _covers(entry: str, host: str) -> bool:
    entry = entry.strip().lower()
    if not entry:
        return False
    if entry == "*" or entry.lstrip(".") == host:
        return True
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def _bypassed(host: str, env: Mapping[str, str]) -> bool:
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    return any(_covers(entry, host) for entry in no_proxy.split(","))


def proxy_bypasses_loopback(env: Mapping[str, str]) -> CheckResult:
    """A proxy without a NO_PROXY entry for loopback sends calls to the gateway to the proxy."""
    proxies = [(n, env[n]) for base in PROXY_VARS for n in (base, base.lower()) if env.get(n)]
    if not proxies:
        return ok("env proxy", "no HTTP(S)_PROXY set")
    named = ", ".join(f"{n}={safe_url(v)}" for n, v in proxies)
    uncovered = [h for h in ("127.0.0.1", "localhost") if not _bypassed(h, env)]
    if not uncovered:
        return ok("env proxy", f"{named}; NO_PROXY covers 127.0.0.1 and localhost")
    fix = 'export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}"'
    if "127.0.0.1" in uncovered:
        return fail(
            "env proxy",
            f"{named} and NO_PROXY does not cover 127.0.0.1: tools calling the gateway on "
            "loopback would send those calls to the proxy",
            fix,
        )
    return warn("env proxy", f"{named} and NO_PROXY does not cover localhost", fix)


def _harmless(name: str, value: str) -> bool:
    if name == "LITELLM_LOCAL_MODEL_COST_MAP":
        return value == "True"
    if name == "LITELLM_LOG":
        return value.upper() != "DEBUG"
    return False


def litellm_overrides(env: Mapping[str, str]) -> CheckResult:
    found = []
    for name, effect in LITELLM_OVERRIDES.items():
        value = env.get(name)
        if value is not None and not _harmless(name, value):
            found.append(f"{name} ({effect})")
    if not found:
        return ok("env LiteLLM", "no LiteLLM variables override memproxy's settings")
    return warn(
        "env LiteLLM",
        "set: " + "; ".join(found),
        "unset them in the daemon's environment unless you mean them, "
        "then `memproxy down && memproxy up`",
    )
