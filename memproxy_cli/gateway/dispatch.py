"""One request over a model's deployments: retries on another deployment, then fallbacks.

Everything here happens before any byte reached the client: a transport returns an upstream
response without writing it, so a failed attempt can still be replaced. Once a response is
handed to the relay (a stream that started, a final answer) it is the answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from memproxy_cli.errors import GatewayError, RowStatus
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.resources import upstream_deps
from memproxy_cli.gateway.state import GatewayState
from memproxy_cli.upstream import echo, passthrough
from memproxy_cli.upstream.cloudflare import parse_retry_after
from memproxy_cli.upstream.deployments import Deployment, ModelGroup, key_tag
from memproxy_cli.upstream.headers import caller_key, upstream_key
from memproxy_cli.upstream.health import Failure, error_failure, response_failure
from memproxy_cli.upstream.limits import backoff_delay
from memproxy_cli.upstream.routing import Route
from memproxy_cli.upstream.transport import UpstreamCall, UpstreamResponse

Allowed = Callable[[str], bool]


def call_upstream(
    ex: Exchange, state: GatewayState, group: ModelGroup, allowed: Allowed
) -> Coroutine[Any, Any, UpstreamResponse]:
    """The first answer worth relaying: from a deployment of `group`, else of a fallback
    model the caller may use; else the last failure, in the API's own shape. (The walk's own
    coroutine, not one wrapping it: each coroutine in the chain costs a frame per resume.)"""
    return _Walk(ex, state, allowed).run(group)


def provider_label(route: Route) -> str:
    return route.provider if route.kind != "litellm" else f"litellm:{route.provider}"


class _Walk:
    """One request's attempts, in order: the model's deployments, then its fallbacks."""

    def __init__(self, ex: Exchange, state: GatewayState, allowed: Allowed) -> None:
        self.ex = ex
        self.state = state
        self.health = state.deployments
        self.allowed = allowed
        settings = state.config.router_settings
        retries = settings.num_retries
        self.retries = state.config.server.max_retries if retries is None else retries
        self.master_key_set = bool(state.config.server.master_key)
        self.deps = upstream_deps(ex.request.app)
        self._tags: dict[str | None, str] = {}

    def tag_of(self, d: Deployment) -> str:
        """The cooldown scope of `d` for this caller: its key's tag where the key is theirs."""
        route = d.route
        if route.key_configured or route.kind in ("echo", "edge"):
            return ""
        key = upstream_key(route, self.ex.request.headers, self.master_key_set)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = key_tag(key)
        return tag

    async def run(self, group: ModelGroup) -> UpstreamResponse:
        self.state.retry_budget.on_request()
        outcome = await self._group(group)
        if isinstance(outcome, UpstreamResponse):
            return outcome
        failure = outcome
        assert failure is not None  # the first attempt needs no retry budget
        names = group.context_fallbacks if failure.context else group.fallbacks
        for name in names:
            if not self.allowed(name):
                continue
            fallback = self.state.groups.group(name, self.ex.family.wire)
            if fallback is None:
                continue
            barred = self._barred(group, fallback)
            if len(barred) == len(fallback.deployments):
                continue
            outcome = await self._group(fallback, barred)
            if isinstance(outcome, UpstreamResponse):
                self.ex.row.extra["fallback_from"] = group.model
                self.ex.row.model = name
                return outcome
            if outcome is None:  # the retry budget ran out
                break
            if outcome.attempted:  # else the model's own failure says more than "cooling"
                failure = outcome
        return _answer(failure)

    def _sends_callers_key(self, d: Deployment) -> bool:
        route = d.route
        if route.key_configured or route.kind in ("echo", "edge") or self.master_key_set:
            return False
        return caller_key(self.ex.request.headers) is not None

    def _barred(self, asked: ModelGroup, fallback: ModelGroup) -> list[str]:
        """Fallback deployments that would take the caller's own key to an origin it was not
        going to for the model asked (an OpenAI key never goes to Anthropic on a fallback)."""
        mine = {d.origin for d in asked.deployments if self._sends_callers_key(d)}
        return [
            d.id
            for d in fallback.deployments
            if self._sends_callers_key(d) and d.origin not in mine
        ]

    async def _group(
        self, group: ModelGroup, barred: list[str] | None = None
    ) -> UpstreamResponse | Failure | None:
        """An answer from one of the group's deployments (none of `barred`), or the failure
        that ended the try (None: not tried at all, the retry budget being spent)."""
        health = self.health
        tried: list[str] = list(barred or ())
        failure: Failure | None = None
        last: Deployment | None = None
        for n in range(1 + self.retries):
            d = health.pick(group, self.tag_of, tried)
            wait = 0.0
            if d is None:
                if failure is None:
                    return self._unavailable(group)
                if not failure.same_again or last is None:
                    break
                d, wait = last, backoff_delay(n - 1, failure.retry_after)
                if health.cooldown_left(d, self.tag_of(d)) > wait:
                    break  # it cools down for longer than a retry may wait
            if self.ex.timing.attempts and not self.state.retry_budget.try_spend():
                return failure
            if wait > 0:
                await asyncio.sleep(wait)
                self.ex.timing.upstream_s += wait
            outcome = await self._attempt(group, d)
            if isinstance(outcome, UpstreamResponse):
                return outcome
            failure, last = outcome, d
            if d.id not in tried:
                tried.append(d.id)
            if failure.context:
                break  # every deployment of a model has the same context window
        return failure

    async def _attempt(self, group: ModelGroup, d: Deployment) -> UpstreamResponse | Failure:
        ex, health = self.ex, self.health
        route = d.route
        _use_model(ex, route.upstream_model)
        ex.route = route
        ex.row.provider = provider_label(route)
        ex.row.extra["deployment"] = d.id
        ex.row.extra["upstream"] = d.upstream
        ex.timing.attempts += 1
        health.started(d)
        try:
            up = await self._transport(upstream_call(ex, route))
        except GatewayError as err:
            health.finished(d)
            retry_after = parse_retry_after(err.headers.get("Retry-After"))
            failure = error_failure(err.status, err.code, err.message, retry_after)
            if failure is None:
                raise
            failure.answer = err
            self._failed(group, d, failure)
            return failure
        except BaseException:
            health.finished(d)
            raise
        if up.events is None and not 200 <= up.status < 300:
            failure = response_failure(up.status, up.body, up.retry_after_s, up.via_cloudflare)
            if failure is not None:
                health.finished(d)
                failure.answer = up
                self._failed(group, d, failure)
                return failure
        up.close = self._release(d, up.close)
        return up

    def _failed(self, group: ModelGroup, d: Deployment, failure: Failure) -> None:
        if d.route.kind != "edge":  # the team gateway routes and cools down for itself
            self.health.failed(group, d, self.tag_of(d), failure)

    def _release(self, d: Deployment, close: Callable[[], None] | None) -> Callable[[], None]:
        """The response's close, which also ends the deployment's call (tokens for its tpm)."""
        health, tally = self.health, self.ex.tally

        def release() -> None:
            try:
                if close is not None:
                    close()
            finally:
                health.finished(d, (tally.prompt_tokens or 0) + (tally.completion_tokens or 0))

        return release

    def _transport(self, call: UpstreamCall) -> Awaitable[UpstreamResponse]:
        """The transport's own coroutine for `call` (awaited by the caller: no frame here)."""
        deps, route = self.deps, call.route
        if route.kind == "passthrough":
            return passthrough.forward(call, deps)
        if route.kind == "echo":
            return _ready(echo.respond(call, self.ex.row.request_id[4:]))
        if route.kind == "edge":
            identity = self.ex.identity
            assert identity is not None
            caller = (identity.project, identity.user_id)
            return passthrough.forward_edge(call, deps, caller, route.base_url)
        litellm = self.ex.resources.litellm
        if litellm is None:
            raise GatewayError(
                503,
                "translation through LiteLLM is not available in this process",
                "translation_unavailable",
            )
        return litellm.serve(call, deps)

    def _unavailable(self, group: ModelGroup) -> Failure:
        """Every deployment of the group is cooling down (or at its rpm/tpm) for this caller."""
        wait = max(1, math.ceil(self.health.wait_s(group, self.tag_of)))
        if len(group.deployments) == 1:
            d = group.deployments[0]
            where = d.origin or d.upstream
            message = f"upstream {where} asked us to back off; retry in {wait} s"
        else:
            message = (
                f"every deployment of {group.model!r} is cooling down or at its rate limit; "
                f"retry in {wait} s"
            )
        error = GatewayError(
            429,
            message,
            "upstream_rate_limited",
            headers={"Retry-After": str(wait)},
            row_status=RowStatus.RATE_LIMITED,
        )
        return Failure(429, "cooling down", cools=False, answer=error, attempted=False)


async def _ready(up: UpstreamResponse) -> UpstreamResponse:
    return up


def _answer(failure: Failure) -> UpstreamResponse:
    answer = failure.answer
    if isinstance(answer, UpstreamResponse):
        return answer
    assert isinstance(answer, GatewayError)
    raise answer


def _use_model(ex: Exchange, upstream_model: str) -> None:
    body = ex.body
    if upstream_model and "model" in body and upstream_model != body["model"]:
        body["model"] = upstream_model
        ex.modified = True


def upstream_call(ex: Exchange, route: Route) -> UpstreamCall:
    request = ex.request
    return UpstreamCall(
        family=ex.family,
        route=route,
        body=ex.body,
        payload=ex.body_bytes(),
        stream=ex.stream,
        incoming=request.headers,
        path_qs=request.path_qs,
        query=request.rel_url.raw_query_string,  # as sent: decoded, it may hold "#" or "&"
        traceparent=ex.traceparent,
        model=ex.row.model or "",
        timing=ex.timing,
        method=request.method,
    )
