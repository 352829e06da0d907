"""The request path, one straight line: ingress, identify, authorize, recall, upstream, record."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from memproxy_cli.api.family import ApiFamily
from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway.accounting import settle
from memproxy_cli.gateway.dispatch import call_upstream, provider_label
from memproxy_cli.gateway.errors import error_response
from memproxy_cli.gateway.exchange import Exchange, new_request_id, traceparent_for
from memproxy_cli.gateway.identity import resolve_identity
from memproxy_cli.gateway.relay import relay
from memproxy_cli.gateway.resources import collect
from memproxy_cli.gateway.state import STATE, GatewayState
from memproxy_cli.gateway.validate import check_request, parse_json, read_body
from memproxy_cli.observability.timeline import Timeline, recall_outcome
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.upstream.deployments import ModelGroup, deployment_for
from memproxy_cli.upstream.routing import Route

if TYPE_CHECKING:
    from memproxy_cli.observability.observer import Observer

log = logging.getLogger("memproxy.request")
Serve = Callable[[Exchange, GatewayState], Awaitable[web.StreamResponse]]
LogFields = Callable[[logging.Logger, str, dict[str, str | int | float | None]], None]


def _info(logger: logging.Logger, msg: str, fields: dict[str, str | int | float | None]) -> None:
    logger.info(msg, extra=fields)


_log_fields: LogFields = _info


def use_log_writer(writer: LogFields) -> None:
    """Write the request line with `writer` (the daemon's: the same line, without a LogRecord)."""
    global _log_fields
    _log_fields = writer


async def handle(
    request: web.Request, family: ApiFamily, serve: Serve | None = None
) -> web.StreamResponse:
    """One request, served by `serve` (default: the whole request path), with its row."""
    state = request.app[STATE]
    resources = state.resources
    ex = Exchange(
        request=request,
        family=family,
        endpoint=request.path,
        row=RequestRow(request_id=new_request_id(), started_at=time.time(), endpoint=request.path),
        resources=resources if resources is not None else collect(request.app),
    )
    ex.response_headers["x-memproxy-request-id"] = ex.row.request_id
    state.inflight += 1
    state.requests_total += 1
    try:
        return await (serve or _serve)(ex, state)
    except GatewayError as err:
        ex.row.status, ex.row.http_status, ex.row.error = err.row_status, err.status, err.message
        headers = {**ex.response_headers, **err.headers}
        headers["x-memproxy-overhead-ms"] = f"{ex.overhead_ms():.2f}"
        return error_response(family, err.status, err.message, err.code, headers)
    except (asyncio.CancelledError, ConnectionResetError):
        if not ex.stream_complete:  # a client may hang up once it has the last event
            ex.row.status, ex.row.error = "client_disconnect", "client went away"
        raise
    except Exception:  # one bad request must not take the gateway down
        log.exception("unhandled error in request %s", ex.row.request_id)
        ex.row.status, ex.row.http_status = "error", 500
        ex.row.error = "internal gateway error (details in the daemon log)"
        return error_response(family, 500, "internal gateway error", None, ex.response_headers)
    finally:
        state.inflight -= 1
        _finish(ex, state)


async def _serve(ex: Exchange, state: GatewayState) -> web.StreamResponse:
    config = state.config
    family, request = ex.family, ex.request
    ex.raw = await read_body(request, config.server.max_body_bytes)
    ex.body = parse_json(ex.raw)
    check_request(family, ex.body)
    model = family.model_of(request.match_info, ex.body)
    ex.row.model = model
    ex.stream = family.is_stream(request.match_info, request.query, ex.body)
    ex.row.stream = ex.stream
    identify(ex, state)
    _authorize(ex, state, model)
    ex.traceparent, ex.row.trace_id = traceparent_for(request.headers.get("traceparent"))
    if config.gateway_url:
        return await serve_edge(ex, state, config.gateway_url)
    group = state.groups.group(model, family.wire)
    if group is None:
        raise GatewayError(
            404,
            f"model {model!r} is not configured and its provider cannot be inferred; "
            "add it to model_list (see `memproxy doctor`)",
            "model_not_found",
        )
    ex.route = group.primary
    ex.row.provider = provider_label(group.primary)
    ex.timeline.recall_start = ex.elapsed_s()
    await _recall(ex, state)
    ex.timeline.recall_end = ex.elapsed_s()
    _prepare_body(ex)
    ex.response_headers["x-memproxy-memories"] = str(ex.row.memories_injected)
    if ex.memory_error:
        ex.response_headers["x-memproxy-memory-error"] = ex.memory_error
    ex.response_headers["x-memproxy-overhead-ms"] = f"{ex.overhead_ms():.2f}"
    ex.timeline.upstream_start = ex.elapsed_s()
    project = ex.row.project
    up = await call_upstream(ex, state, group, lambda name: _model_allowed(state, project, name))
    ex.timeline.upstream_answer = ex.elapsed_s()
    return await relay(ex, up, state.config.server)


async def serve_edge(ex: Exchange, state: GatewayState, gateway_url: str) -> web.StreamResponse:
    """Edge mode: the shared gateway routes, remembers and accounts; we add who is calling."""
    route = Route(kind="edge", model=ex.row.model or "", provider="edge", base_url=gateway_url)
    ex.route = route
    ex.row.provider = "edge"
    ex.response_headers["x-memproxy-overhead-ms"] = f"{ex.overhead_ms():.2f}"
    group = ModelGroup(route.model, (deployment_for(route, "edge"),))
    ex.timeline.upstream_start = ex.elapsed_s()
    up = await call_upstream(ex, state, group, lambda _name: False)
    ex.timeline.upstream_answer = ex.elapsed_s()
    return await relay(ex, up, state.config.server)


def identify(ex: Exchange, state: GatewayState) -> None:
    port = _local_port(ex.request)
    listener_project = state.port_projects.get(port) if port is not None else None
    if listener_project is None and state.main_port is not None and port != state.main_port:
        # A keep-alive connection that outlived `memproxy detach` must not fall back to the
        # main port's identity rules.
        raise GatewayError(
            410,
            f"the project listener on port {port} was detached",
            "listener_detached",
            headers={"Connection": "close"},
            row_status="rejected",
        )
    identity = resolve_identity(ex.request.headers, listener_project, state.mappings)
    ex.identity = identity
    row = ex.row
    row.project, row.user_id = identity.project, identity.user_id
    row.client, row.client_version = identity.client, identity.client_version
    row.client_instance, row.client_session = identity.client_instance, identity.client_session


def _local_port(request: web.Request) -> int | None:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return None


def _model_allowed(state: GatewayState, project: str | None, model: str) -> bool:
    policy = state.config.policy_for(project)  # projects["*"] covers requests without one
    return policy is None or policy.allowed_models is None or model in policy.allowed_models


def _authorize(ex: Exchange, state: GatewayState, model: str) -> None:
    project = ex.row.project
    if not _model_allowed(state, project, model):
        policy = state.config.policy_for(project)
        assert policy is not None and policy.allowed_models is not None
        raise GatewayError(
            403,
            f"model {model!r} is not allowed for "
            + (f"project {project!r}" if project else "requests without a project")
            + f" (allowed: {', '.join(policy.allowed_models) or 'none'})",
            "model_not_allowed",
            row_status="rejected",
        )
    budget_name = state.config.budget_name(project)
    budgets = ex.resources.budgets
    if budgets is not None and budget_name:
        verdict = budgets.check(budget_name)
        if verdict is not None:
            raise GatewayError(429, verdict.message, "budget_exceeded", row_status="rejected")


async def _recall(ex: Exchange, state: GatewayState) -> None:
    memory = ex.resources.memory
    if memory is None or ex.identity is None:
        return
    identity = ex.identity
    recall = await memory.recall(
        ex.family, ex.body, identity.scope, identity.project, ex.request.headers, identity.client
    )
    ex.row.memories_injected = recall.memories_injected
    ex.memory_error = recall.error
    ex.recall_user_text = recall.user_text
    ex.recall = recall
    ex.timeline.recall = recall_outcome(
        recall.user_text is not None, recall.error, recall.memories_injected
    )
    if recall.modified:
        ex.modified = True


def _prepare_body(ex: Exchange) -> None:
    prepared = ex.family.prepare(ex.body, ex.stream)
    ex.modified = ex.modified or prepared.modified
    ex.client_wants_usage = prepared.client_wants_usage


def _finish(ex: Exchange, state: GatewayState) -> None:
    record_start = ex.elapsed_s()
    row, failure = ex.row, ex.tally.failure
    if failure and row.status == "ok":
        row.status, row.error = "error", failure[:500]
    settle(ex, ex.resources, state.config)
    _remember(ex)
    observer = ex.resources.observer
    timeline = _timeline(ex, record_start) if observer is not None else None
    # The log line, metrics, the live view and tracing run after the response has gone out,
    # on the loop's next turn, in one callback.
    asyncio.get_running_loop().call_soon(_after_response, row, observer, timeline)


def _timeline(ex: Exchange, record_start: float) -> Timeline:
    """The request's timings, completed for metrics, the live view and tracing."""
    timeline = ex.timeline
    timeline.record_start, timeline.record_end = record_start, ex.elapsed_s()
    timeline.incoming_traceparent = ex.request.headers.get("traceparent")
    timeline.method = ex.request.method
    timeline.upstream_traceparent = ex.traceparent
    if ex.route is not None:
        timeline.upstream_model = ex.route.upstream_model or None
    return timeline


def _after_response(row: RequestRow, observer: Observer | None, timeline: Timeline | None) -> None:
    try:
        _log_row(row)
    finally:
        if observer is not None and timeline is not None:
            observer.observe(row, timeline)


def _remember(ex: Exchange) -> None:
    """The turn is stored once the answer ends its agent loop (memory/capture.py)."""
    memory = ex.resources.memory
    if memory is None or ex.identity is None or ex.recall is None:
        return
    echo = ex.route is not None and ex.route.kind == "echo"
    memory.finish(
        ex.recall,
        ex.identity.scope,
        ex.identity.project,
        ex.row.status,
        ex.tally,
        echo,
        ex.row.model,
        ex.row.request_id,
        ex.identity.user_id,
    )


def _log_row(row: RequestRow) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    _log_fields(
        log,
        "request",
        {
            "request_id": row.request_id,
            "project": row.project,
            "model": row.model,
            "status": row.status,
            "http_status": row.http_status,
            "latency_ms": row.latency_ms,
            "overhead_ms": row.overhead_ms,
            "trace_id": row.trace_id,
            "client": row.client,
        },
    )
