"""The built-in `memproxy/echo` model: answers with what the upstream would have received."""

from __future__ import annotations

import orjson
from aiohttp import web

from memproxy_cli.gateway import synth
from memproxy_cli.gateway.exchange import Exchange


def upstream_view(ex: Exchange) -> str:
    """The conversation as it would leave the gateway, memories included."""
    view: dict[str, object] = {"messages": ex.body.get("messages")}
    if ex.api == "anthropic" and "system" in ex.body:
        view = {"system": ex.body.get("system"), **view}
    return orjson.dumps(view, option=orjson.OPT_INDENT_2).decode()


async def respond(ex: Exchange) -> web.StreamResponse:
    text = upstream_view(ex)
    prompt_tokens = synth.estimate_tokens(ex.raw.decode("utf-8", "replace"))
    completion_tokens = synth.estimate_tokens(text)
    ex.tally.prompt_tokens, ex.tally.completion_tokens = prompt_tokens, completion_tokens
    ex.tally.text_parts.append(text)
    rid = ex.row.request_id
    if ex.api == "openai":
        body = synth.openai_completion(
            "chatcmpl-" + rid[4:], ex.row.model or "", text, prompt_tokens, completion_tokens
        )
        events = synth.openai_stream(body, ex.client_wants_usage) if ex.stream else None
    else:
        body = synth.anthropic_message(
            "msg_" + rid[4:], ex.row.model or "", text, prompt_tokens, completion_tokens
        )
        events = synth.anthropic_stream(body) if ex.stream else None
    ex.row.http_status = 200
    if events is None:
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers=ex.response_headers
        )
    response = web.StreamResponse(headers=ex.response_headers)
    response.content_type = "text/event-stream"
    await response.prepare(ex.request)
    ex.ttft_s = ex.elapsed_s()
    for event in events:
        await response.write(event)
    await response.write_eof()
    return response
