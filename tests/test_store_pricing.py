"""Cost from LiteLLM's real price table, with config overrides and provider prefixes."""

from __future__ import annotations

import pytest

from memproxy_cli.config import parse_config
from memproxy_cli.store.pricing import PriceTable, cost_usd

PRICES = {
    "claude-sonnet-4-5": {
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_read_input_token_cost": 3e-07,
        "cache_creation_input_token_cost": 3.75e-06,
    },
    "gpt-4o": {
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-06,
    },
}


def test_anthropic_prompt_excludes_cache_tokens() -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "cache_read_tokens": 2000,
        "cache_write_tokens": 400,
    }
    expected = 1000 * 3e-06 + 100 * 1.5e-05 + 2000 * 3e-07 + 400 * 3.75e-06
    for model in ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"):
        got = cost_usd(model, "anthropic", usage, None, PRICES)
        assert got == pytest.approx(expected)


def test_openai_prompt_includes_cached_tokens() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 10, "cache_read_tokens": 600}
    expected = 400 * 2.5e-06 + 10 * 1e-05 + 600 * 1.25e-06
    assert cost_usd("gpt-4o", "openai", usage, None, PRICES) == pytest.approx(expected)
    assert cost_usd("openai/gpt-4o", None, usage, None, PRICES) == pytest.approx(expected)


def test_config_override_wins_and_unknown_models_cost_nothing_known() -> None:
    config = parse_config(
        "pricing:\n  gpt-4o:\n    input_cost_per_token: 0.001\n    output_cost_per_token: 0.002\n"
    )
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    assert cost_usd("gpt-4o", "openai", usage, config, PRICES) == pytest.approx(0.02)
    assert cost_usd("my-local-llama", "openai", usage, None, PRICES) is None
    assert cost_usd(None, None, usage, None, PRICES) is None
    broken = {"gpt-4o": {"input_cost_per_token": "not a number"}}
    assert cost_usd("gpt-4o", "openai", usage, None, broken) is None


def test_price_table_loads_litellm_map_in_background() -> None:
    table = PriceTable()
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    assert table.cost("gpt-4o", "openai", usage) is None  # not loaded yet: no wait
    table.load_in_background()
    assert table.wait(timeout=110)
    cost = table.cost("gpt-4o", "openai", usage)
    assert cost is not None and cost > 0
    assert table.cost("anthropic/claude-sonnet-4-5", "anthropic", usage) is not None
