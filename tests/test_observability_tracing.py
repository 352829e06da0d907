"""OTLP/HTTP spans: a receiver on loopback decodes the official protobuf messages the SDK sends."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from memproxy_cli.observability.tracing import tracing_settings
from tests.fixtures.daemon import free_port
from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

CALLER_KEY = "sk-caller-secret-51be7a"
PROMPT = "prompt-canary-0c3e what is my password"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class OtlpReceiver:
    """Accepts POST /v1/traces like a collector and keeps the decoded requests and raw bytes."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.spans: list[tuple[dict[str, Any], Span]] = []  # (resource attributes, span)
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.raw.append(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for rs in export.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                self.spans.extend((resource, s) for s in ss.spans)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()

    async def wait_for(self, n: int, timeout: float = 20.0) -> list[Span]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.spans) < n:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.spans)} spans arrived, expected {n}")
            await asyncio.sleep(0.02)
        return [s for _, s in self.spans]


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(span: Span) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in span.attributes}


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    r = OtlpReceiver()
    await r.start()
    yield r
    assert r.server is not None
    await r.server.close()


async def _chat(url: str, stream: bool, **headers: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=url + "/v1", api_key=CALLER_KEY, max_retries=0, default_headers=headers
    ) as oai:
        if stream:
            got = await oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True
            )
            [c async for c in got]
        else:
            await oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
            )


@pytest.mark.parametrize("stream", [False, True])
async def test_one_span_tree_per_request_under_the_callers_trace(
    fake: FakeProvider, receiver: OtlpReceiver, stream: bool
) -> None:
    config = config_for(
        fake.base,
        # A budget no first recall on a loaded machine runs out of: the outcome is always "miss".
        memory={"backend": "local", "recall_timeout_ms": 60_000},
        observability={"otlp_endpoint": receiver.url, "service_name": "gw-under-test"},
    )
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    async with running_gateway(config, litellm=False) as gw:
        await _chat(gw.url, stream, traceparent=traceparent, **{"x-memproxy-project": "alpha"})
        spans = await receiver.wait_for(4)
    by_name = {s.name: s for s in spans}
    root = by_name["POST /v1/chat/completions"]
    assert root.kind == Span.SPAN_KIND_SERVER
    assert root.trace_id.hex() == CLIENT_TRACE
    assert root.parent_span_id.hex() == CLIENT_SPAN  # the client's span is the parent
    upstream = by_name["chat gpt-4o-mini"]
    assert upstream.kind == Span.SPAN_KIND_CLIENT
    sent = fake.seen[-1].headers["traceparent"].split("-")
    assert sent[1] == CLIENT_TRACE
    assert upstream.span_id.hex() == sent[2]  # what went upstream names the upstream span
    assert upstream.parent_span_id == root.span_id
    assert [e.name for e in upstream.events] == ["memproxy.first_byte"]
    assert upstream.start_time_unix_nano <= upstream.events[0].time_unix_nano
    recall, record = by_name["memproxy.recall"], by_name["memproxy.record"]
    assert recall.parent_span_id == root.span_id and record.parent_span_id == root.span_id
    assert attrs(recall)["memproxy.recall.outcome"] == "miss"
    assert all(s.trace_id == root.trace_id for s in spans)
    a = attrs(root)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == "openai" and a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == 11 and a["gen_ai.usage.output_tokens"] > 0
    assert a["memproxy.project"] == "alpha" and a["memproxy.client"] == "openai-python"
    assert a["http.response.status_code"] == 200 and a["memproxy.stream"] is stream
    assert a["http.request.method"] == "POST"
    assert receiver.spans[0][0]["service.name"] == "gw-under-test"
    exported = b"".join(receiver.raw)
    for secret in (CALLER_KEY, PROMPT, "what is my password", "Hello from the fake upstream"):
        assert secret.encode() not in exported


async def test_a_request_without_traceparent_starts_a_trace(
    fake: FakeProvider, receiver: OtlpReceiver
) -> None:
    config = config_for(fake.base, observability={"otlp_endpoint": receiver.url})
    async with running_gateway(config, litellm=False) as gw:
        await _chat(gw.url, False)
        spans = await receiver.wait_for(2)  # memory is off: the request, upstream and record
    root = next(s for s in spans if s.kind == Span.SPAN_KIND_SERVER)
    assert root.parent_span_id == b""
    assert fake.seen[-1].headers["traceparent"].split("-")[1] == root.trace_id.hex()
    assert not any(s.name == "memproxy.recall" for s in spans)


async def test_a_stored_response_relay_has_its_upstream_span(receiver: OtlpReceiver) -> None:
    """GET /v1/responses/{id} names no model; its trip upstream is still a client span, and
    what went upstream names that span."""
    from tests.fixtures.fake_responses import FakeResponses

    fake = await FakeResponses().start()
    try:
        config = config_for(fake.base, observability={"otlp_endpoint": receiver.url})
        async with running_gateway(config, litellm=False) as gw:
            async with openai.AsyncOpenAI(
                base_url=gw.url + "/v1", api_key=CALLER_KEY, max_retries=0
            ) as oai:
                created = await oai.responses.create(model="gpt-4o", input="Keep this")
                await oai.responses.retrieve(created.id)
            spans = await receiver.wait_for(6)  # two requests: root, upstream and record each
    finally:
        await fake.close()
    root = next(s for s in spans if s.name == f"GET /v1/responses/{created.id}")
    upstream = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT and s.trace_id == root.trace_id]
    assert len(upstream) == 1 and upstream[0].parent_span_id == root.span_id
    sent = fake.seen[-1].headers["traceparent"].split("-")
    assert (sent[1], sent[2]) == (root.trace_id.hex(), upstream[0].span_id.hex())


async def test_a_collector_that_is_down_costs_no_request(fake: FakeProvider) -> None:
    config = config_for(
        fake.base, observability={"otlp_endpoint": f"http://127.0.0.1:{free_port()}"}
    )
    async with running_gateway(config, litellm=False) as gw:
        for _ in range(20):
            await _chat(gw.url, False)
        assert gw.observer is not None and gw.observer.tracer is not None
    assert len(fake.seen) == 20


def test_settings_follow_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracing_settings(None, None) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "team-gateway")
    settings = tracing_settings(None, None)
    assert settings is not None
    assert settings.endpoint == "http://collector:4318/v1/traces"
    assert settings.service_name == "team-gateway"
    configured = tracing_settings("http://other:4318", "mine")
    assert configured is not None and configured.endpoint == "http://other:4318/v1/traces"
    assert configured.service_name == "mine"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing_settings("http://other:4318", None) is None


_IMPORTS = """
import asyncio, json, sys
from aiohttp.test_utils import TestClient, TestServer
from memproxy_cli.config import parse_config
from memproxy_cli.gateway.app import build_app

async def main() -> None:
    app = build_app(parse_config("memory: {backend: none}\\n", "c.yaml"), litellm=False)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/metrics")).status == 200
        await client.post("/v1/chat/completions", json={"model": "memproxy/echo",
                          "messages": [{"role": "user", "content": "hi"}]})

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("tracing", [False, True])
def test_the_sdk_is_imported_only_when_tracing_is_on(tracing: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if tracing:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-c", _IMPORTS],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    sdk = {m for m in modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))}
    assert bool(sdk) is tracing
