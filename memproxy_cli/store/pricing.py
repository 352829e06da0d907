"""Request cost from LiteLLM's price table (`litellm.model_cost`) and per-model config overrides.

Token convention (as recorded in `RequestRow`): for Anthropic, `prompt_tokens` excludes cache reads
and writes (its `input_tokens`); for everyone else `prompt_tokens` includes cached tokens (OpenAI's
`prompt_tokens` with `cached_tokens` a part of it).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memproxy_cli.config import Config

log = logging.getLogger(__name__)

PriceMap = Mapping[str, Mapping[str, Any]]
_KEYS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
)


def model_candidates(model: str, provider: str | None) -> list[str]:
    """Names to look a model up under: as given, without its provider prefix, with it."""
    names = [model]
    bare = model.split("/", 1)[1] if "/" in model else model
    if bare != model:
        names.append(bare)
    family = (provider or "").removeprefix("litellm:")
    if family and "/" not in model:
        names.append(f"{family}/{model}")
    return names


def find_price(
    model: str, provider: str | None, prices: PriceMap, overrides: Mapping[str, Any]
) -> dict[str, float] | None:
    """Config override first, then the LiteLLM entry; None when the model is unknown."""
    names = model_candidates(model, provider)
    for name in names:
        if name in overrides:
            entry = overrides[name]
            data = entry.model_dump() if hasattr(entry, "model_dump") else dict(entry)
            return {k: float(data[k]) for k in _KEYS if data.get(k) is not None}
    for name in names:
        entry = prices.get(name)
        if isinstance(entry, Mapping) and entry.get("input_cost_per_token") is not None:
            return {k: float(entry[k]) for k in _KEYS if entry.get(k) is not None}
    return None


def cost_usd(
    model: str | None,
    provider: str | None,
    usage: Mapping[str, int | None],
    config: Config | None,
    prices: PriceMap,
) -> float | None:
    """USD for one request, or None when the model or its usage is unknown. Never raises."""
    price = _find_or_none(model, provider, config, prices) if model else None
    if price is None:
        return None
    try:
        return _priced(price, usage, anthropic=_anthropic(provider))
    except Exception:
        log.warning("cannot price model %r", model, exc_info=True)
        return None


def _find_or_none(
    model: str, provider: str | None, config: Config | None, prices: PriceMap
) -> dict[str, float] | None:
    try:
        return find_price(model, provider, prices, config.pricing if config is not None else {})
    except Exception:
        log.warning("cannot price model %r", model, exc_info=True)
        return None


def _anthropic(provider: str | None) -> bool:
    return (provider or "").endswith("anthropic")


def _priced(price: dict[str, float], usage: Mapping[str, int | None], *, anthropic: bool) -> float:
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    read = usage.get("cache_read_tokens") or 0
    write = usage.get("cache_write_tokens") or 0
    uncached = prompt if anthropic else max(prompt - read - write, 0)
    input_cost = price.get("input_cost_per_token", 0.0)
    return (
        uncached * input_cost
        + completion * price.get("output_cost_per_token", 0.0)
        + read * price.get("cache_read_input_token_cost", input_cost)
        + write * price.get("cache_creation_input_token_cost", input_cost)
    )


class PriceTable:
    """LiteLLM's price map, loaded once in a background thread (litellm is slow to import)."""

    def __init__(self, prices: PriceMap | None = None) -> None:
        self._prices: PriceMap | None = prices
        # Prices found per (model, provider), for one config and one loaded table.
        self._found: dict[tuple[str, str | None], dict[str, float] | None] = {}
        self._found_for: tuple[object, object] = (None, None)
        self._ready = threading.Event()
        if prices is not None:
            self._ready.set()
        self._thread: threading.Thread | None = None

    def load_in_background(self) -> None:
        if self._thread is None and not self._ready.is_set():
            self._thread = threading.Thread(target=self._load, name="memproxy-prices", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            self._prices = _read_bundled_prices() or _import_litellm_prices()
        except Exception:
            log.warning("LiteLLM price table unavailable; costs will be empty", exc_info=True)
            self._prices = {}
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def cost(
        self,
        model: str | None,
        provider: str | None,
        usage: Mapping[str, int | None],
        config: Config | None = None,
    ) -> float | None:
        """Cost now; None while the table is still loading (never blocks)."""
        # Config overrides price a model even before the table has loaded.
        prices = self._prices or {}
        if not model:
            return None
        cached_config, cached_prices = self._found_for
        if cached_config is not config or cached_prices is not self._prices:  # reload, or loaded
            self._found, self._found_for = {}, (config, self._prices)
        key = (model, provider)
        try:
            price = self._found[key]
        except KeyError:
            price = _find_or_none(model, provider, config, prices)
            if len(self._found) < 4096:
                self._found[key] = price
        if price is None:
            return None
        return _priced(price, usage, anthropic=_anthropic(provider))


def _read_bundled_prices() -> PriceMap | None:
    """LiteLLM's price map straight from the JSON it ships: milliseconds, no litellm import."""
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
    return None


def _import_litellm_prices() -> PriceMap:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return dict(litellm.model_cost)
