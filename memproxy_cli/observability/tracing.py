"""OpenTelemetry spans, built once a request has finished, exported in batches over OTLP/HTTP.

One span tree per request, made after the fact from the row's timings with explicit start and
end times (no context managers around the awaits of the request path). The event loop only
appends (row, timeline) to a bounded deque; a thread builds the spans and hands them to the
SDK's batch processor, which exports from its own thread. When either queue is full (a
collector that is down) spans are dropped, never requests. The SDK is imported only when
tracing is on (`pip install memproxy[otel]`). Attributes follow the OpenTelemetry GenAI
semantic conventions; a span never holds a prompt, a completion, a key or a cookie.
"""

from __future__ import annotations

import os
import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memproxy_cli.observability.timeline import Timeline
from memproxy_cli.store.rows import RequestRow

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

SCOPE = "memproxy"
DEFAULT_SERVICE = "memproxy"
EXPORT_TIMEOUT_S = 5.0
BUILD_INTERVAL_S = 0.25
MAX_PENDING = 8192
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TracingSettings:
    endpoint: str  # the full OTLP/HTTP traces URL
    service_name: str


def tracing_settings(otlp_endpoint: str | None, service_name: str | None) -> TracingSettings | None:
    """Where spans go: the config's endpoint, else the standard OTEL_* variables; None is off."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = None
    if otlp_endpoint:
        endpoint = _traces_url(otlp_endpoint)
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = _traces_url(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    if endpoint is None:
        return None
    name = service_name or env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE
    return TracingSettings(endpoint=endpoint, service_name=name)


def _traces_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def operation_name(endpoint: str) -> str:
    """gen_ai.operation.name for a request path."""
    if "embeddings" in endpoint:
        return "embeddings"
    if endpoint.endswith(("generateContent", "streamGenerateContent")):
        return "generate_content"
    if endpoint.endswith("/completions") and "chat" not in endpoint:
        return "text_completion"
    return "chat"


def provider_name(provider: str | None) -> str | None:
    """gen_ai.provider.name: the provider behind a row's `provider` (LiteLLM's included)."""
    if not provider:
        return None
    return provider.removeprefix("litellm:")


class Tracer:
    """Turns finished requests into spans and hands them to the SDK's batch processor."""

    def __init__(self, settings: TracingSettings) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        from memproxy_cli import __version__

        self.settings = settings
        exporter = OTLPSpanExporter(endpoint=settings.endpoint, timeout=EXPORT_TIMEOUT_S)
        self._processor: BatchSpanProcessor = BatchSpanProcessor(
            exporter, max_queue_size=4096, schedule_delay_millis=1000, max_export_batch_size=512
        )
        self._resource = Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        )
        self._scope = InstrumentationScope(SCOPE, __version__)
        self._pending: deque[tuple[RequestRow, Timeline]] = deque(maxlen=MAX_PENDING)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memproxy-spans", daemon=True)
        self._thread.start()

    def record(self, row: RequestRow, timeline: Timeline) -> None:
        """Queue a finished request for its spans (from the loop: one deque append)."""
        self._pending.append((row, timeline))

    def _run(self) -> None:
        while not self._stop.wait(BUILD_INTERVAL_S):
            self.build_pending()
        self.build_pending()

    def build_pending(self) -> None:
        pending, processor = self._pending, self._processor
        while pending:
            row, timeline = pending.popleft()
            try:
                for span in self.spans(row, timeline):
                    processor.on_end(span)
            except Exception:  # one odd row must not stop the thread
                continue

    def spans(self, row: RequestRow, timeline: Timeline) -> list[Any]:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        upstream = _parse(timeline.upstream_traceparent)
        if upstream is None:
            return []
        trace_id, upstream_span_id, flags = upstream
        sampled = TraceFlags(flags & TraceFlags.SAMPLED)
        parent = None
        incoming = _parse(timeline.incoming_traceparent)
        if incoming is not None and incoming[0] == trace_id:
            parent = SpanContext(trace_id, incoming[1], is_remote=True, trace_flags=sampled)
        root = SpanContext(trace_id, _span_id(), is_remote=False, trace_flags=sampled)
        start_ns = int(row.started_at * _NS)
        end_ns = start_ns + int((row.latency_ms or 0.0) * 1_000_000)

        def at(offset_s: float | None) -> int:
            return start_ns + int((offset_s or 0.0) * _NS)

        def child(
            name: str, kind: Any, begin: int, end: int, attrs: dict[str, Any], **kw: Any
        ) -> Any:
            context = SpanContext(
                trace_id, kw.pop("span_id", None) or _span_id(), False, trace_flags=sampled
            )
            return ReadableSpan(
                name=name,
                context=context,
                parent=root,
                resource=self._resource,
                attributes=attrs,
                kind=kind,
                start_time=begin,
                end_time=max(begin, end),
                instrumentation_scope=self._scope,
                **kw,
            )

        ok = row.status == "ok"
        status = Status(StatusCode.UNSET) if ok else Status(StatusCode.ERROR, row.status)
        common = gen_ai_attributes(row, timeline)
        operation = common["gen_ai.operation.name"]
        spans = [
            ReadableSpan(
                name=f"{timeline.method} {row.endpoint}",
                context=root,
                parent=parent,
                resource=self._resource,
                attributes={
                    **common,
                    **request_attributes(row),
                    "http.request.method": timeline.method,
                },
                kind=SpanKind.SERVER,
                status=status,
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=self._scope,
            )
        ]
        if timeline.recall_start is not None and timeline.recall not in ("off", "skipped"):
            spans.append(
                child(
                    "memproxy.recall",
                    SpanKind.INTERNAL,
                    at(timeline.recall_start),
                    at(timeline.recall_end),
                    _clean(
                        {
                            "memproxy.project": row.project,
                            "memproxy.recall.outcome": timeline.recall,
                            "memproxy.memories_injected": row.memories_injected,
                        }
                    ),
                    status=Status(StatusCode.UNSET)
                    if timeline.recall in ("hit", "miss")
                    else Status(StatusCode.ERROR, timeline.recall),
                )
            )
        if timeline.upstream_start is not None:
            begin = at(timeline.upstream_start)
            first = row.ttft_ms / 1000.0 if row.ttft_ms is not None else timeline.upstream_answer
            events = []
            if first is not None:
                events.append(Event("memproxy.first_byte", {}, at(first)))
            upstream_model = timeline.upstream_model or row.model
            spans.append(
                child(
                    f"{operation} {upstream_model}" if upstream_model else operation,
                    SpanKind.CLIENT,
                    begin,
                    end_ns,
                    _clean({**common, "gen_ai.request.model": upstream_model}),
                    span_id=upstream_span_id,
                    events=events,
                    status=status,
                )
            )
        if timeline.record_start is not None:
            spans.append(
                child(
                    "memproxy.record",
                    SpanKind.INTERNAL,
                    at(timeline.record_start),
                    at(timeline.record_end),
                    {"memproxy.request_id": row.request_id},
                )
            )
        return spans

    def shutdown(self) -> None:
        """Export what is queued (bounded by the export timeout) and stop the threads."""
        self._stop.set()
        self._thread.join()
        self._processor.shutdown()  # type: ignore[no-untyped-call]


def gen_ai_attributes(row: RequestRow, timeline: Timeline) -> dict[str, Any]:
    provider = provider_name(row.provider)
    return _clean(
        {
            "gen_ai.operation.name": operation_name(row.endpoint),
            "gen_ai.system": provider,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": row.model,
            "gen_ai.response.model": timeline.upstream_model or row.model,
            "gen_ai.usage.input_tokens": row.prompt_tokens,
            "gen_ai.usage.output_tokens": row.completion_tokens,
            "gen_ai.usage.cache_read.input_tokens": row.cache_read_tokens,
            "gen_ai.usage.cache_creation.input_tokens": row.cache_write_tokens,
            "memproxy.project": row.project,
            "memproxy.client": row.client,
        }
    )


def request_attributes(row: RequestRow) -> dict[str, Any]:
    return _clean(
        {
            "url.path": row.endpoint,
            "http.response.status_code": row.http_status,
            "error.type": None if row.status == "ok" else row.status,
            "memproxy.request_id": row.request_id,
            "memproxy.status": row.status,
            "memproxy.stream": row.stream,
            "memproxy.client.version": row.client_version,
            "memproxy.cost_usd": row.cost_usd,
            "memproxy.overhead_ms": row.overhead_ms,
            "memproxy.ttft_ms": row.ttft_ms,
            "memproxy.memories_injected": row.memories_injected,
        }
    )


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


def _parse(traceparent: str | None) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C traceparent; None when it is not one."""
    if not traceparent:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, flags


def _span_id() -> int:
    return random.getrandbits(64) or 1
