"""Redis (when `redis_url` is set): reachable, authenticated, and how fast it answers."""

from __future__ import annotations

import time

from memproxy_cli.doctor.redact import safe_url
from memproxy_cli.doctor.result import CheckResult, fail, ok, skip, warn

NAME = "redis"
TIMEOUT_S = 1.0
SLOW_MS = 50.0


def check_redis(redis_url: str | None, timeout_s: float = TIMEOUT_S) -> CheckResult:
    if not redis_url:
        return skip(NAME, "redis_url is not set")
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    where = safe_url(redis_url)
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
    )
    try:
        started = time.perf_counter()
        client.ping()
        latency_ms = (time.perf_counter() - started) * 1000
    except redis.RedisError as exc:
        return redis_error(where, exc, timeout_s, _has_password(redis_url))
    finally:
        client.close()
    return _latency(where, latency_ms)


def _latency(where: str, latency_ms: float) -> CheckResult:
    found = f"{where} answers PING in {latency_ms:.1f} ms (connect, auth and ping)"
    if latency_ms > SLOW_MS:
        return warn(NAME, found, "a Redis this slow adds latency to every budget check")
    return ok(NAME, found)


def _has_password(redis_url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return bool(urlsplit(redis_url).password)
    except ValueError:
        return False


def redis_error(where: str, exc: Exception, timeout_s: float, has_password: bool) -> CheckResult:
    """Name the failure: wrong password, no password, refused, timeout or a silent server."""
    import redis

    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        if not has_password:
            found = f"{where} requires a password and redis_url carries none (NOAUTH)"
        else:
            found = f"{where} rejected the password or user in redis_url (WRONGPASS)"
        return fail(NAME, found, "put the right password in redis_url: redis://:PASSWORD@host:port")
    if "without any password configured" in text:
        return fail(
            NAME, f"{where} has no password but redis_url sends one", "drop it from redis_url"
        )
    if isinstance(exc, redis.TimeoutError):
        return _timeout(where, text, timeout_s)
    if isinstance(exc, redis.ConnectionError):
        return _connection(where, text)
    return fail(NAME, f"{where}: {type(exc).__name__}: {text}", "check the Redis server's log")


def _timeout(where: str, text: str, timeout_s: float) -> CheckResult:
    if "connecting" in text.lower():
        return fail(
            NAME,
            f"{where}: no TCP connection within {timeout_s:g} s (timeout)",
            "check the host and any firewall between here and Redis",
        )
    return fail(
        NAME,
        f"{where} accepts connections but never answers (hanging, {timeout_s:g} s timeout)",
        "the port is held by a stuck Redis or by something that is not Redis; restart it",
    )


def _connection(where: str, text: str) -> CheckResult:
    lowered = text.lower()
    if "refused" in lowered or "errno 111" in lowered:
        return fail(
            NAME,
            f"{where}: connection refused (nothing listens there)",
            "start Redis (redis-server) or correct the host and port in redis_url",
        )
    if "name or service not known" in lowered or "nodename" in lowered or "errno -2" in lowered:
        return fail(
            NAME, f"{where}: the host name does not resolve", "correct the host in redis_url"
        )
    if "closed by server" in lowered:
        return fail(
            NAME,
            f"{where} closed the connection (not Redis, or TLS expected?)",
            "check the port and the scheme (redis:// or rediss://)",
        )
    return fail(NAME, f"{where}: cannot connect: {text}", "check that Redis runs and is reachable")
