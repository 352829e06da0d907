"""`/v1/embeddings`, `/v1/completions` and `GET /v1/models/{id}` through the official SDK.

Passthrough to OpenAI-compatible upstreams, LiteLLM for other providers, a row per call with
tokens and cost, and errors in the shape of the API the path belongs to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from tests.fixtures.fake_upstreams import FakeProvider
from tests.fixtures.gateway import RunningGateway, config_for, running_gateway
from tests.fixtures.reliability import rows_when

PRICING = {
    "text-embedding-3-small": {"input_cost_per_token": 0.001, "output_cost_per_token": 0},
    "gpt-3.5-turbo-instruct": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002},
}


@pytest.fixture
async def gw(fake: FakeProvider) -> AsyncIterator[RunningGateway]:
    config = config_for(
        fake.base,
        pricing=PRICING,
        model_list=[
            {
                "model_name": "embed-via-litellm",
                "litellm_params": {
                    "model": "mistral/mistral-embed",
                    "api_base": fake.base + "/v1",
                    "api_key": "sk-mistral-configured-001",
                },
            },
        ],
    )
    async with running_gateway(config) as gateway:
        yield gateway


def _client(gw: RunningGateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gw.url + "/v1",
        api_key="sk-caller-0001",
        max_retries=0,
        default_headers={"x-memproxy-project": "alpha"},
    )


async def test_embeddings_pass_through_with_a_row(gw: RunningGateway, fake: FakeProvider) -> None:
    async with _client(gw) as oai:
        result = await oai.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[1].embedding[0] == pytest.approx(0.2)
    seen = fake.seen[0]
    assert seen.path == "/v1/embeddings" and seen.body["input"] == ["one", "two"]
    assert seen.headers["Authorization"] == "Bearer sk-caller-0001"
    [row] = await rows_when(1)
    assert row["endpoint"] == "/v1/embeddings" and row["status"] == "ok"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (8, 0)
    assert row["cost_usd"] == pytest.approx(8 * 0.001)
    assert row["memories_injected"] == 0


async def test_embeddings_through_litellm(gw: RunningGateway, fake: FakeProvider) -> None:
    async with _client(gw) as oai:
        result = await oai.embeddings.create(
            model="embed-via-litellm", input="hello", extra_body={"timeout": 0.001}
        )
    assert len(result.data) == 1 and result.model == "embed-via-litellm"
    seen = fake.seen[0]
    assert seen.path == "/v1/embeddings"
    assert seen.headers["Authorization"] == "Bearer sk-mistral-configured-001"
    [row] = await rows_when(1)
    assert row["provider"] == "litellm:mistral" and row["prompt_tokens"] == 8


@pytest.mark.parametrize("stream", [False, True])
async def test_completions_pass_through(
    gw: RunningGateway, fake: FakeProvider, stream: bool
) -> None:
    async with _client(gw) as oai:
        if stream:
            chunks = await oai.completions.create(
                model="gpt-3.5-turbo-instruct", prompt="def add(a, b):\n", stream=True
            )
            text = "".join([c.choices[0].text async for c in chunks if c.choices])
        else:
            result = await oai.completions.create(
                model="gpt-3.5-turbo-instruct", prompt="def add(a, b):\n", suffix="\n"
            )
            text = result.choices[0].text
    assert text == "    return a + b\n"
    assert fake.seen[0].path == "/v1/completions"
    assert fake.seen[0].body["prompt"] == "def add(a, b):\n"  # nothing injected into code
    [row] = await rows_when(1)
    assert (row["prompt_tokens"], row["completion_tokens"], row["stream"]) == (5, 3, stream)
    assert row["cost_usd"] == pytest.approx(5 * 0.001 + 3 * 0.002)


async def test_echo_answers_embeddings_and_completions(gw: RunningGateway) -> None:
    async with _client(gw) as oai:
        vectors = await oai.embeddings.create(model="memproxy/echo", input=["a", "b"])
        again = await oai.embeddings.create(model="memproxy/echo", input=["a"])
        completion = await oai.completions.create(model="memproxy/echo", prompt="x = ")
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 16
    assert vectors.data[0].embedding == again.data[0].embedding != vectors.data[1].embedding
    assert '"prompt": "x = "' in completion.choices[0].text


async def test_models_retrieve(gw: RunningGateway) -> None:
    async with _client(gw) as oai:
        echo = await oai.models.retrieve("memproxy/echo")
        configured = await oai.models.retrieve("embed-via-litellm")
        inferred = await oai.models.retrieve("gpt-4o")
        with pytest.raises(openai.NotFoundError) as missing:
            await oai.models.retrieve("no-such-model")
    assert (echo.id, configured.id, inferred.id) == ("memproxy/echo", "embed-via-litellm", "gpt-4o")
    body = missing.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found"
    async with aiohttp.ClientSession() as http:
        headers = {"anthropic-version": "2023-06-01"}
        async with http.get(gw.url + "/v1/models/claude-sonnet-4-5", headers=headers) as r:
            assert r.status == 200 and (await r.json())["type"] == "model"
        async with http.get(gw.url + "/v1/models/nope", headers=headers) as r:
            error = await r.json()
            assert r.status == 404 and error["type"] == "error"
            assert error["error"]["type"] == "not_found_error"


async def test_bad_embedding_input_is_a_400_in_openai_shape(gw: RunningGateway) -> None:
    async with _client(gw) as oai:
        with pytest.raises(openai.BadRequestError) as bad:
            await oai.embeddings.create(model="text-embedding-3-small", input=[])
    body = bad.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_input"
