"""Extraction for recall_quality.py: each turn of the story distilled by a configured model.

The calls go through the gateway's own extractor (gateway/extract_calls.py), built from your
config (model_list, keys, routing) with its data in a temporary directory, so the spend rows
land there and are summed at the end. Replies can be kept in a file (`--facts-file`) so a
second run scores again without calling the model again. It needs a real model: a fake one
would only tell us what it was scripted to know.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from memproxy_cli.config import Config
from memproxy_cli.memory.backend import Turn
from memproxy_cli.memory.extract import FACTS, build_request, parse_facts
from memproxy_cli.paths import Paths

SCOPE = "bench"


@dataclass
class Extracted:
    facts: list[list[str] | None]  # per turn; None: the extraction failed
    failures: int = 0
    spend: dict[str, Any] = field(default_factory=dict)


def _isolated(config: Config) -> Config:
    """The config's models and keys, with its own store and no memory, Redis or team database."""
    memory = config.memory.model_copy(update={"backend": "none"})
    return config.model_copy(update={"memory": memory, "database_url": None, "redis_url": None})


async def _extract(
    config: Config, model: str, turns: list[Turn], concurrency: int, root: Path
) -> Extracted:
    from aiohttp import web

    from memproxy_cli.gateway.app import build_app
    from memproxy_cli.gateway.extract_calls import GatewayExtractor

    paths = Paths(root / "config", root / "data", root / "state", root / "logs", root)
    app = build_app(_isolated(config), paths)
    runner = web.AppRunner(app)
    await runner.setup()  # the gateway's resources: sessions, LiteLLM, the spend writer
    extractor = GatewayExtractor(app)
    slots = asyncio.Semaphore(concurrency)
    out = Extracted(facts=[None] * len(turns))
    done = 0

    async def one(i: int, turn: Turn) -> None:
        nonlocal done
        async with slots:
            try:
                reply = await extractor(build_request(model, turn, SCOPE, SCOPE, "bench"))
                out.facts[i] = parse_facts(reply)
            except Exception as exc:
                out.failures += 1
                if out.failures <= 3:
                    print(f"  extraction {i} failed: {type(exc).__name__}: {str(exc)[:160]}")
            done += 1
            if done % 100 == 0:
                print(f"  {done}/{len(turns)} turns extracted")

    try:
        await asyncio.gather(*(one(i, t) for i, t in enumerate(turns)))
    finally:
        await runner.cleanup()  # the spend writer flushes its rows
    out.spend = _spend(paths)
    return out


def _spend(paths: Paths) -> dict[str, Any]:
    from memproxy_cli.store.queries import open_queries

    rows = open_queries(None, paths).recent_rows(1_000_000)
    mine = [dict(r) for r in rows if dict(r).get("client") == "memproxy-extract"]
    return {
        "calls": len(mine),
        "prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in mine),
        "completion_tokens": sum(r.get("completion_tokens") or 0 for r in mine),
        "cost_usd": sum(r.get("cost_usd") or 0.0 for r in mine),
    }


def extract_story(
    config: Config,
    model: str,
    turns: list[Turn],
    concurrency: int = 4,
    facts_file: Path | None = None,
) -> Extracted:
    """Every turn's facts, from `facts_file` when it holds this model's for these turns."""
    if facts_file is not None and facts_file.exists():
        kept = json.loads(facts_file.read_text())
        if kept.get("model") == model and len(kept.get("facts", ())) == len(turns):
            print(f"  facts from {facts_file} (no model call)")
            return Extracted(facts=kept["facts"], failures=kept.get("failures", 0))
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(_extract(config, model, turns, concurrency, Path(tmp)))
    if facts_file is not None:
        document = {"model": model, "facts": out.facts, "failures": out.failures}
        facts_file.write_text(json.dumps(document))
    return out


def stored_turns(turns: list[Turn], facts: list[list[str] | None]) -> list[Turn]:
    """The story's turns as the service stores them: marked when facts were drawn from them."""
    out = []
    for turn, found in zip(turns, facts, strict=True):
        turn = replace(turn, metadata=dict(turn.metadata))
        if found:
            turn.metadata[FACTS] = len(found)
        out.append(turn)
    return out
