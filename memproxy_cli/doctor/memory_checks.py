"""Memory backend: the local store is readable; the Supermemory key is present and accepted."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from memproxy_cli.doctor.http_probe import http_get
from memproxy_cli.doctor.redact import safe_url
from memproxy_cli.doctor.result import CheckResult, fail, ok, skip, warn
from memproxy_cli.paths import Paths

if TYPE_CHECKING:
    from memproxy_cli.config import Config

TIMEOUT_S = 5.0
PROBE_NAMESPACE = "memproxy-doctor"


def check_memory(
    config: Config | None, paths: Paths, offline: bool, timeout_s: float = TIMEOUT_S
) -> list[CheckResult]:
    if config is None:
        return [skip("memory", "skipped: the config is invalid")]
    backends = {config.memory.backend} | {
        p.memory.backend for p in config.projects.values() if p.memory.backend
    }
    results: list[CheckResult] = []
    if "local" in backends:
        results.append(local_store(paths.local_memory(config.memory.local.path)))
    if "supermemory" in backends:
        results.append(supermemory(config, offline, timeout_s))
    return results or [skip("memory", "memory.backend is none")]


def local_store(db: Path) -> CheckResult:
    name = "memory local"
    if not db.exists():
        return ok(name, f"{db} not created yet (the first stored turn creates it)")
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
        try:
            count = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return fail(
            name,
            f"{db} is not readable: {exc}",
            f"check its permissions; if it is damaged, move it aside (mv {db} {db}.broken)",
        )
    return ok(name, f"{db} readable, {count} memories")


def supermemory(config: Config, offline: bool, timeout_s: float) -> CheckResult:
    from memproxy_cli.config import resolve_secret

    name = "memory supermemory"
    settings = config.memory.supermemory
    key = resolve_secret(settings.api_key)
    if not key:
        ref = settings.api_key or ""
        where = f"the variable {ref.split('/', 1)[1]}" if ref.startswith("os.environ/") else "it"
        return fail(
            name,
            "no Supermemory API key (memory.supermemory.api_key)",
            f"set {where} to your Supermemory API key",
        )
    if offline:
        return ok(name, "API key present (not verified: --offline)")
    return key_accepted(settings.base_url, key, timeout_s)


def key_accepted(base_url: str, key: str, timeout_s: float = TIMEOUT_S) -> CheckResult:
    """List one document of a namespace of our own: the cheapest call that needs the key."""
    name = "memory supermemory"
    url = f"{base_url.rstrip('/')}/ns/{PROBE_NAMESPACE}/list/documents?page=1&limit=1"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    probe = http_get(url, headers, timeout_s, method="POST", body=b"{}")
    where = safe_url(base_url)
    if probe.status is None:
        return fail(
            name,
            f"{where}: {probe.detail} [{probe.error}]",
            "check memory.supermemory.base_url and the network",
        )
    if probe.status in (401, 403):
        return fail(
            name,
            f"{where} rejected the API key (HTTP {probe.status})",
            "replace the key (memory.supermemory.api_key / SUPERMEMORY_API_KEY)",
        )
    if probe.status < 300:
        return ok(name, f"{where} accepted the API key")
    return warn(name, f"{where} answered HTTP {probe.status}", "retry later")
