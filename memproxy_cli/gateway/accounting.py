"""The end of every row: its timings and tokens, its cost, the budgets it counts against, and
the spend store. One function for a client's request and for memproxy's own calls."""

from __future__ import annotations

import time

from memproxy_cli.config import Config
from memproxy_cli.gateway.exchange import Exchange
from memproxy_cli.gateway.resources import Resources


def settle(ex: Exchange, resources: Resources, config: Config) -> None:
    """Fill the row from the exchange, price it, charge the budgets, hand it to the writer."""
    row, tally = ex.row, ex.tally
    row.ended_at = time.time()
    row.latency_ms = round(ex.elapsed_s() * 1000.0, 3)
    row.overhead_ms = round(ex.overhead_ms(), 3)
    if ex.ttft_s is not None:
        row.ttft_ms = round(ex.ttft_s * 1000.0, 3)
    if ex.timing.attempts:
        row.extra["attempts"] = ex.timing.attempts
    row.prompt_tokens, row.completion_tokens = tally.prompt_tokens, tally.completion_tokens
    row.cache_read_tokens, row.cache_write_tokens = (
        tally.cache_read_tokens,
        tally.cache_write_tokens,
    )
    route = ex.route
    prices = resources.prices
    if prices is not None and route is not None and route.kind != "echo":
        row.cost_usd = prices.cost(route.litellm_model, row.provider, row.usage(), config)
    budgets = resources.budgets
    if budgets is not None and row.cost_usd:
        # The project's own counter, and the shared default budget's when that is the one in force.
        for name in {row.project, config.budget_name(row.project)} - {None}:
            budgets.add(name, row.cost_usd, row.ended_at)
    recorder = resources.recorder
    if recorder is not None:
        recorder.submit(row)
