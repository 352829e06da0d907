"""Everything that watches finished requests: metrics, the live view and, when on, tracing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from memproxy_cli.observability.live import LiveView
from memproxy_cli.observability.metrics import GatewayMetrics
from memproxy_cli.observability.timeline import Timeline
from memproxy_cli.observability.tracing import Tracer, TracingSettings
from memproxy_cli.store.rows import RequestRow

log = logging.getLogger("memproxy.observability")


class Observer:
    """Fed one (row, timeline) per request, after its response has gone out."""

    def __init__(self, known_models: Iterable[str] = ()) -> None:
        self.metrics = GatewayMetrics(known_models)
        self.live = LiveView()
        self.tracer: Tracer | None = None

    def start_tracing(self, settings: TracingSettings) -> None:
        self.tracer = Tracer(settings)

    def finished(self, row: RequestRow, timeline: Timeline) -> None:
        """Call from the request path: the work runs on the loop's next turn."""
        asyncio.get_running_loop().call_soon(self.observe, row, timeline)

    def observe(self, row: RequestRow, timeline: Timeline) -> None:
        self.metrics.observe(row, timeline.recall)
        self.live.observe(row)
        tracer = self.tracer
        if tracer is not None:
            try:
                tracer.record(row, timeline)
            except Exception:  # spans are a side view: losing one never costs a request
                log.exception("span export failed for %s", row.request_id)

    async def close(self) -> None:
        tracer, self.tracer = self.tracer, None
        if tracer is not None:
            await asyncio.to_thread(tracer.shutdown)
