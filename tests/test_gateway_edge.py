"""Edge mode: a laptop daemon forwards project traffic to a shared team gateway, unchanged."""

from __future__ import annotations

import anthropic
import openai

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import config_for, running_gateway

MESSAGES: list = [{"role": "user", "content": "The staging database is called blue_orders."}]


async def test_edge_forwards_with_identity_and_streams(fake: FakeProvider) -> None:
    central_config = config_for(fake.base, memory={"backend": "local"})
    async with running_gateway(central_config, litellm=False) as central:
        edge_config = config_for("http://127.0.0.1:9", gateway_url=central.url)
        async with running_gateway(edge_config, litellm=False, store=False) as edge:
            edge.state.port_projects[edge.server.port] = "alpha"  # a project listener
            async with openai.AsyncOpenAI(
                base_url=edge.url + "/v1", api_key="sk-caller-77777777", max_retries=0
            ) as oai:
                reply = await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
                stream = await oai.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES, stream=True
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )
            async with anthropic.AsyncAnthropic(
                base_url=edge.url, api_key="k", max_retries=0
            ) as ant:
                message = await ant.messages.create(
                    model="claude-test-1", max_tokens=10, messages=MESSAGES
                )
            assert central.memory is not None
            await central.memory.drain(10)
            backend = central.memory.backend_for(central.state.config.memory)
            assert backend is not None
            stored = await backend.list("alpha")
    assert reply.choices[0].message.content == text == "Hello from the fake upstream."
    assert message.content[0].type == "text"
    # The provider saw the caller's key; the central gateway knew the project.
    assert fake.seen[0].headers["Authorization"] == "Bearer sk-caller-77777777"
    assert stored and all("blue_orders" in m.text for m in stored)
