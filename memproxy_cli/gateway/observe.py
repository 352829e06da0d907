"""Wiring of observability into the app: the observer, its gauges, tracing, `/metrics`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from memproxy_cli.gateway.state import STATE, GatewayState
from memproxy_cli.observability.metrics import CONTENT_TYPE, GatewayMetrics, Sample
from memproxy_cli.observability.observer import Observer
from memproxy_cli.observability.tracing import tracing_settings

log = logging.getLogger("memproxy.observability")


async def observability_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    settings = state.config.observability
    observer = Observer(known_models=(e.model_name for e in state.config.model_list))
    add_gauges(observer.metrics, state)
    traces = tracing_settings(settings.otlp_endpoint, settings.service_name)
    if traces is not None:
        try:
            observer.start_tracing(traces)
            log.info("tracing on", extra={"endpoint": traces.endpoint})
        except ImportError:
            log.warning(
                "tracing is configured but the OpenTelemetry SDK is not installed: "
                "pip install 'memproxy[otel]'"
            )
    state.observer = observer
    runner = await _metrics_site(app, state)
    yield
    if runner is not None:
        await runner.cleanup()
    state.observer = None
    await observer.close()


async def metrics(request: web.Request) -> web.Response:
    observer = request.app[STATE].observer
    text = observer.metrics.exposition() if observer is not None else ""
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def _metrics_site(app: web.Application, state: GatewayState) -> web.AppRunner | None:
    port = state.config.observability.metrics_port
    if port is None:
        return None
    only = web.Application()
    only[STATE] = state
    only.router.add_get("/metrics", metrics)
    runner = web.AppRunner(only, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, state.config.server.host, port)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot open the metrics port", extra={"port": port, "reason": exc.strerror})
        await runner.cleanup()
        return None
    return runner


def add_gauges(metrics: GatewayMetrics, state: GatewayState) -> None:
    """Values read at scrape time from the parts that own them."""
    metrics.add_gauge(
        "memproxy_requests_in_flight", "Requests being served now.", lambda: [((), state.inflight)]
    )
    metrics.add_gauge(
        "memproxy_spend_queue_depth",
        "Rows waiting for the spend writer.",
        lambda: [((), _writer_stats(state).get("queued", 0))],
    )
    metrics.add_gauge(
        "memproxy_spend_rows_total",
        "Rows the spend writer handled: written, spilled (store down), replayed, dropped.",
        lambda: _spend_rows(state),
        kind="counter",
    )
    metrics.add_gauge(
        "memproxy_upstream_cooldown",
        "1 while a deployment on an upstream is cooling down (for some caller key).",
        lambda: _cooldowns(state),
    )
    metrics.add_gauge(
        "memproxy_memory_stores_dropped_total",
        "Turns not stored as memories: the store queue was full, or the backend failed.",
        lambda: _memory_drops(state),
        kind="counter",
    )


def _writer_stats(state: GatewayState) -> dict[str, int]:
    stats = getattr(state.recorder, "stats", None)
    return stats if isinstance(stats, dict) else {}


def _spend_rows(state: GatewayState) -> Iterable[Sample]:
    stats = _writer_stats(state)
    for outcome in ("written", "spilled", "replayed", "dropped"):
        if outcome in stats:
            yield (("outcome", outcome),), stats[outcome]


def _cooldowns(state: GatewayState) -> Iterable[Sample]:
    sessions = state.sessions
    if sessions is None:
        return
    from memproxy_cli.upstream.deployments import with_cooldowns

    for entry in with_cooldowns(sessions.snapshot(), state.deployments.cooldowns())[:100]:
        yield (("upstream", str(entry.get("origin", ""))),), 1 if entry["cooldowns"] else 0


def _memory_drops(state: GatewayState) -> Iterable[Sample]:
    memory = state.memory
    if memory is None:
        return
    yield (("reason", "queue_full"),), getattr(memory, "dropped_stores", 0)
    yield (("reason", "backend_error"),), getattr(memory, "failed_stores", 0)
