"""Wiring of observability into the app: the observer, its gauges, tracing, `/metrics`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from memproxy_cli.config import LOOPBACK_HOSTS
from memproxy_cli.gateway.guard import Handler, web_page_refusal
from memproxy_cli.gateway.resources import MEMORY, OBSERVER, RECORDER, SESSIONS
from memproxy_cli.gateway.state import STATE
from memproxy_cli.observability.metrics import CONTENT_TYPE, GatewayMetrics, Sample
from memproxy_cli.observability.observer import Observer
from memproxy_cli.observability.tracing import tracing_settings

log = logging.getLogger("memproxy.observability")


async def observability_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    settings = state.config.observability
    observer = Observer(known_models=(e.model_name for e in state.config.model_list))
    add_gauges(observer.metrics, app)
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
    app[OBSERVER] = observer
    runner = await _metrics_site(app, observer)
    yield
    if runner is not None:
        await runner.cleanup()
    await observer.close()


async def metrics(request: web.Request) -> web.Response:
    observer = request.app.get(OBSERVER)
    text = observer.metrics.exposition() if observer is not None else ""
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def _metrics_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The metrics port asks for no key; on loopback it still refuses what a web page sends
    (a foreign Host name, a foreign Origin), as the main listener does."""
    refused = web_page_refusal(request)
    if refused is not None:
        return web.Response(status=403, text=refused[0] + "\n")
    return await handler(request)


async def _metrics_site(app: web.Application, observer: Observer) -> web.AppRunner | None:
    state = app[STATE]
    port = state.config.observability.metrics_port
    if port is None:
        return None
    loopback = state.config.server.host in LOOPBACK_HOSTS
    only = web.Application(middlewares=[_metrics_guard] if loopback else [])
    only[OBSERVER] = observer
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


def add_gauges(metrics: GatewayMetrics, app: web.Application) -> None:
    """Values read at scrape time from the parts that own them."""
    state = app[STATE]
    metrics.add_gauge(
        "memproxy_requests_in_flight", "Requests being served now.", lambda: [((), state.inflight)]
    )
    metrics.add_gauge(
        "memproxy_spend_queue_depth",
        "Rows waiting for the spend writer.",
        lambda: [((), _writer_stats(app).get("queued", 0))],
    )
    metrics.add_gauge(
        "memproxy_spend_rows_total",
        "Rows the spend writer handled: written, spilled (store down), replayed, dropped.",
        lambda: _spend_rows(app),
        kind="counter",
    )
    metrics.add_gauge(
        "memproxy_upstream_cooldown",
        "1 while a deployment on an upstream is cooling down (for some caller key).",
        lambda: _cooldowns(app),
    )
    metrics.add_gauge(
        "memproxy_memory_stores_dropped_total",
        "Turns not stored as memories: the store queue was full, or the backend failed.",
        lambda: _memory_drops(app),
        kind="counter",
    )


def _writer_stats(app: web.Application) -> dict[str, int]:
    recorder = app.get(RECORDER)
    return recorder.stats if recorder is not None else {}


def _spend_rows(app: web.Application) -> Iterable[Sample]:
    stats = _writer_stats(app)
    for outcome in ("written", "spilled", "replayed", "dropped"):
        if outcome in stats:
            yield (("outcome", outcome),), stats[outcome]


def _cooldowns(app: web.Application) -> Iterable[Sample]:
    sessions, state = app.get(SESSIONS), app[STATE]
    if sessions is None:
        return
    from memproxy_cli.upstream.health import with_cooldowns

    for entry in with_cooldowns(sessions.snapshot(), state.deployments.cooldowns())[:100]:
        yield (("upstream", str(entry.get("origin", ""))),), 1 if entry["cooldowns"] else 0


def _memory_drops(app: web.Application) -> Iterable[Sample]:
    memory = app.get(MEMORY)
    if memory is None:
        return
    yield (("reason", "queue_full"),), memory.dropped_stores
    yield (("reason", "backend_error"),), memory.failed_stores
