"""memproxy's own call to the user's model for memory extraction (memory/extract.py).

The call goes through the same dispatch as a client's request: the model's route and
deployments, its cooldowns and rpm/tpm, the project's model allow-list and budget, the price
table. It is recorded as a spend row of the project and user, with the client
`memproxy-extract`. It carries only memproxy's prompt and the turn: no header, key, system
prompt or tool of the caller's, so the credentials are the ones the gateway holds for that
model (a model_list api_key, or the daemon's provider key toward the provider's default base).
There are no fallbacks: the turn never goes to a model other than the configured one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from memproxy_cli.api.anthropic_messages import ANTHROPIC_MESSAGES
from memproxy_cli.api.family import ApiFamily
from memproxy_cli.api.openai_chat import OPENAI_CHAT
from memproxy_cli.errors import GatewayError
from memproxy_cli.gateway.accounting import settle
from memproxy_cli.gateway.dispatch import call_upstream, provider_label
from memproxy_cli.gateway.exchange import Exchange, new_request_id, traceparent_for
from memproxy_cli.gateway.resources import BUDGETS, OBSERVER, resources_of
from memproxy_cli.gateway.state import STATE, GatewayState
from memproxy_cli.memory.extract import ExtractionError, ExtractRequest
from memproxy_cli.observability.timeline import Timeline
from memproxy_cli.store.rows import RequestRow
from memproxy_cli.upstream.sessions import default_user_agent
from memproxy_cli.upstream.transport import UpstreamResponse

EXTRACT_CLIENT = "memproxy-extract"


@dataclass(frozen=True, slots=True)
class _OwnRequest:
    """What the dispatch reads of a request, for a call nobody sent: no credentials, no
    client headers, only memproxy's User-Agent."""

    app: web.Application
    path: str
    headers: CIMultiDictProxy[str]
    method: str = "POST"

    @property
    def path_qs(self) -> str:
        return self.path

    @property
    def rel_url(self) -> URL:
        return URL(self.path)


def _family_for(state: GatewayState, model: str) -> ApiFamily:
    """Messages for a model served as it is by an Anthropic upstream; chat otherwise (as it
    is by an OpenAI-compatible upstream, translated by LiteLLM for the rest)."""
    route = state.router.resolve(model, "anthropic")
    if route is not None and route.kind == "passthrough":
        return ANTHROPIC_MESSAGES
    return OPENAI_CHAT


def _body(family: ApiFamily, request: ExtractRequest) -> dict[str, Any]:
    if family is ANTHROPIC_MESSAGES:
        return {
            "model": request.model,
            "max_tokens": request.max_output_tokens,
            "system": request.system,
            "messages": [{"role": "user", "content": request.prompt}],
        }
    return {
        "model": request.model,
        "messages": [
            {"role": "system", "content": request.system},
            {"role": "user", "content": request.prompt},
        ],
    }


class GatewayExtractor:
    """The `Extractor` memory calls: one upstream call per turn, and its spend row."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def __call__(self, request: ExtractRequest) -> str:
        app = self._app
        state = app[STATE]  # read per call: a reload swaps it
        model = request.model
        family = _family_for(state, model)
        group = state.groups.group(model, family.wire)
        if group is None:
            raise ExtractionError(f"model {model!r} is not configured and has no provider")
        policy = state.config.policy_for(request.project)
        allowed = policy.allowed_models if policy is not None else None
        if allowed is not None and model not in allowed:
            raise ExtractionError(f"model {model!r} is not allowed for the project")
        budget_name = state.config.budget_name(request.project)
        budgets = app.get(BUDGETS)
        if budgets is not None and budget_name:
            verdict = budgets.check(budget_name)
            if verdict is not None:
                raise ExtractionError(f"budget: {verdict.message}")
        ex = self._exchange(family, request)
        ex.route = group.primary
        ex.row.provider = provider_label(group.primary)
        try:
            up = await call_upstream(ex, state, group, lambda _name: False)
            return self._answer(ex, up)
        except GatewayError as err:
            row = ex.row
            row.status, row.http_status, row.error = err.row_status, err.status, err.message
            raise ExtractionError(f"upstream: {err.status} {err.message}") from None
        except BaseException:
            ex.row.status, ex.row.error = "error", "extraction call interrupted"
            raise
        finally:
            self._record(ex)

    def _exchange(self, family: ApiFamily, request: ExtractRequest) -> Exchange:
        path = family.endpoints[0].path
        headers = CIMultiDict({"content-type": "application/json"})
        headers["user-agent"] = default_user_agent()
        own = _OwnRequest(self._app, path, CIMultiDictProxy(headers))
        body = _body(family, request)
        row = RequestRow(
            request_id=new_request_id(),
            started_at=time.time(),
            endpoint=path,
            project=request.project,
            user_id=request.user_id,
            client=EXTRACT_CLIENT,
            model=request.model,
        )
        if request.source_request_id:
            row.extra["extract_of"] = request.source_request_id
        ex = Exchange(
            request=cast(web.Request, own),  # the dispatch reads only what _OwnRequest has
            family=family,
            endpoint=path,
            row=row,
            resources=resources_of(self._app),
            body=body,
            raw=orjson.dumps(body),
        )
        ex.traceparent, row.trace_id = traceparent_for(None)
        return ex

    def _answer(self, ex: Exchange, up: UpstreamResponse) -> str:
        try:
            if up.events is not None:  # a whole answer was asked for
                raise ExtractionError("the upstream answered with a stream")
            document = up.document
            if document is None and up.body is not None:
                try:
                    document = orjson.loads(up.body)
                except orjson.JSONDecodeError:
                    document = None
            ex.row.http_status = up.status
            if not 200 <= up.status < 300:
                ex.row.status, ex.row.error = "error", up.error or f"upstream {up.status}"
                raise ExtractionError(f"upstream answered {up.status}")
            if document is None:
                ex.row.status, ex.row.error = "error", "upstream answer is not JSON"
                raise ExtractionError("upstream answer is not JSON")
            ex.family.tally_response(ex.tally, document)
            return ex.tally.text
        finally:
            if up.close is not None:
                up.close()

    def _record(self, ex: Exchange) -> None:
        app, route = self._app, ex.route
        settle(ex, ex.resources, app[STATE].config)
        observer = app.get(OBSERVER)  # metrics and `memproxy top` count it with the project's
        if observer is not None:
            ended = ex.elapsed_s()
            timeline = Timeline(
                upstream_start=0.0,
                upstream_answer=ended,
                record_start=ended,
                record_end=ended,
                upstream_model=route.upstream_model or None if route is not None else None,
                upstream_traceparent=ex.traceparent,
            )
            observer.finished(ex.row, timeline)
