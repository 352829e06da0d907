"""A path memproxy does not serve: a 404 in that API's shape, a request id, and a row."""

from __future__ import annotations

import aiohttp

from tests.fixtures.gateway import config_for, running_gateway
from tests.fixtures.reliability import rows_when


async def test_unknown_routes_leave_a_row_and_answer_in_the_family_shape() -> None:
    config = config_for("http://127.0.0.1:9")
    async with running_gateway(config, litellm=False) as gw:
        async with aiohttp.ClientSession() as http:
            headers = {"x-memproxy-project": "alpha", "User-Agent": "claude-cli/2.1.197 (cli)"}
            async with http.post(gw.url + "/v1/messages/batches", json={}, headers=headers) as resp:
                anthropic_body = await resp.json()
                anthropic_id = resp.headers["x-memproxy-request-id"]
                assert resp.status == 404
            async with http.get(gw.url + "/v1/vector_stores", headers=headers) as resp:
                openai_body = await resp.json()
                openai_id = resp.headers["x-memproxy-request-id"]
                assert resp.status == 404
        rows = await rows_when(2)
    assert anthropic_body["type"] == "error"
    assert anthropic_body["error"]["type"] == "not_found_error"
    assert "/v1/messages/batches" in anthropic_body["error"]["message"]
    assert "docs/clients.md" in anthropic_body["error"]["message"]
    assert openai_body["error"]["code"] == "not_found"
    assert "/v1/vector_stores" in openai_body["error"]["message"]
    by_id = {r["request_id"]: r for r in rows}
    assert set(by_id) == {anthropic_id, openai_id}
    for row in by_id.values():
        assert row["status"] == "not_found" and row["http_status"] == 404
        assert row["project"] == "alpha" and row["client"] == "claude-cli"
    assert by_id[anthropic_id]["endpoint"] == "/v1/messages/batches"
