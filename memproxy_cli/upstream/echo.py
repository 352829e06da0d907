"""The echo transport (`memproxy/echo`): answers with what the upstream would have received."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from memproxy_cli.api.tally import estimate_tokens
from memproxy_cli.upstream.transport import UpstreamCall, UpstreamResponse


def upstream_view(call: UpstreamCall) -> str:
    """The conversation as it would leave the gateway, memories included."""
    view = call.family.echo_view(call.body)
    return orjson.dumps(view, option=orjson.OPT_INDENT_2).decode()


def respond(call: UpstreamCall, response_id: str) -> UpstreamResponse:
    text = upstream_view(call)
    prompt_tokens = estimate_tokens(call.payload.decode("utf-8", "replace"))
    family = call.family
    body = family.synth_response(
        response_id, call.model, text, prompt_tokens, estimate_tokens(text)
    )
    if not call.stream:
        return UpstreamResponse(200, document=body)
    # Usage always goes out; the relay drops it where the client did not ask for it.
    return UpstreamResponse(200, events=_events(family.synth_stream(body, True)))


async def _events(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
