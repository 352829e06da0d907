"""Recall quality of the local backend: recall@k on lexical, paraphrase and update questions.

40 facts told over eight simulated weeks among 1,500 turns of coding chatter (recall_facts.py),
asked in new conversations. A lexical or paraphrase question is a hit when a memory of its fact
(the first telling or its update) is among the top k; an update question is a hit when the
update is among the top k and the older value is not ranked above it.
Modes: `lexical` (FTS5 BM25 alone, what the CLI does) and `hybrid` (with the embedding model).
With `--extract-model M`, also `extract`: every turn distilled into facts by the model M of your
config (a real model: each turn is one call, the project's spend), recalled as the daemon does
(facts instead of the turns they came from); a fact is a hit for the turn it was drawn from.
Usage: python benchmarks/recall_quality.py [--k 5] [--modes lexical,hybrid] [--shortlist-share 0.03]
       python benchmarks/recall_quality.py --extract-model gpt-4o-mini [--config F]
           [--facts-file facts.json] [--chatter 1500]
(--shortlist-share: the vector shortlist as the share of the store it is at 100k memories.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recall_facts import FACTS, NOW, Story, story

from memproxy_cli.memory.local import LocalMemoryBackend

SCOPE = "bench"
Search = Callable[[str, int], list[str]]  # a question, k -> the ids of the turns recalled


def build(path: Path, tale: Story, embed: bool) -> tuple[LocalMemoryBackend, list[str]]:
    """The story's store at `path` (kept there: a second run reuses its embeddings)."""
    backend = LocalMemoryBackend(path, embed=embed)
    ids = [m.id for m in backend.export_sync(SCOPE)]
    if len(ids) != len(tale.turns):
        ids = backend._add_batch([(SCOPE, turn) for turn in tale.turns])
    if embed:
        backend.wait_embedded_sync()
        backend.wait_vectors_loaded_sync(SCOPE)
    return backend, ids


def turn_search(backend: LocalMemoryBackend) -> Search:
    return lambda q, k: [m.id for m in backend.search_sync(SCOPE, q, k, now=NOW)]


def score(search: Search, tale: Story, ids: list[str], k: int) -> dict[str, float]:
    hits = {"lexical": 0, "paraphrase": 0, "update": 0}
    totals = {"lexical": 0, "paraphrase": 0, "update": 0}
    for fact in FACTS:
        versions = {ids[tale.told[fact.key]]}
        if fact.key in tale.updated:
            versions.add(ids[tale.updated[fact.key]])
        for kind, question in (("lexical", fact.lexical), ("paraphrase", fact.paraphrase)):
            found = search(question, k)
            totals[kind] += 1
            hits[kind] += bool(versions & set(found))
        if fact.update_question and fact.key in tale.updated:
            found = search(fact.update_question, k)
            new, old = ids[tale.updated[fact.key]], ids[tale.told[fact.key]]
            totals["update"] += 1
            ok = new in found and (old not in found or found.index(old) > found.index(new))
            hits["update"] += ok
    return {kind: hits[kind] / totals[kind] for kind in hits if totals[kind]}


def extract_mode(args: argparse.Namespace, tale: Story, path: Path) -> tuple[dict[str, float], str]:
    """Figures with every turn distilled by `--extract-model`, and a line on the extraction."""
    from recall_extract import extract_story, stored_turns

    from memproxy_cli.config import load_config
    from memproxy_cli.memory.extract import fact_turns, is_distilled
    from memproxy_cli.memory.service import SEARCH_HEADROOM

    config = load_config(args.config)
    model = args.extract_model
    print(f"extracting {len(tale.turns)} turns with {model} ...")
    got = extract_story(config, model, tale.turns, args.concurrency, args.facts_file)
    backend = LocalMemoryBackend(path, embed=True)
    turns = stored_turns(tale.turns, got.facts)
    ids = backend._add_batch([(SCOPE, t) for t in turns])
    facts = [
        (SCOPE, fact)
        for i, found in enumerate(got.facts)
        if found
        for fact in fact_turns(found, turns[i], ids[i], model)
    ]
    fact_ids = backend._add_batch(facts)
    source = {fid: fact[1].metadata["fact_of"] for fid, fact in zip(fact_ids, facts, strict=True)}
    backend.wait_embedded_sync()
    backend.wait_vectors_loaded_sync(SCOPE)

    def search(question: str, k: int) -> list[str]:
        wanted = 2 * k + SEARCH_HEADROOM  # as the service asks with extraction on
        found = backend.search_sync(SCOPE, question, wanted, now=NOW)
        kept = [m for m in found if not is_distilled(m.metadata)][:k]
        return [source.get(m.id, m.id) for m in kept]

    figures = score(search, tale, ids, args.k)
    backend.shutdown_sync()
    spend = got.spend
    line = (
        f"extraction: {sum(1 for f in got.facts if f)} turns distilled into {len(facts)} facts, "
        f"{got.failures} failed"
    )
    if spend:
        line += (
            f"; {spend['calls']} calls, {spend['prompt_tokens']} + {spend['completion_tokens']}"
            f" tokens, ${spend['cost_usd']:.4f}"
        )
    return figures, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--modes", default="lexical,hybrid")
    parser.add_argument("--store", type=Path, help="keep the store here (default: temporary)")
    parser.add_argument("--chatter", type=int, default=1500, help="distractor turns")
    parser.add_argument("--extract-model", help="also distil every turn with this model")
    parser.add_argument("--config", help="the config that names the model (default: yours)")
    parser.add_argument("--facts-file", type=Path, help="keep the model's facts here")
    parser.add_argument("--concurrency", type=int, default=4, help="extraction calls at once")
    parser.add_argument(
        "--shortlist-share",
        type=float,
        help="vector shortlist as this share of the store, with no floor (as at 100k memories)",
    )
    args = parser.parse_args()
    if args.shortlist_share is not None:
        from memproxy_cli.memory import scope_vectors

        scope_vectors.SHORTLIST_MIN = 0
        scope_vectors.SHORTLIST_SHARE = args.shortlist_share
    tale = story(chatter=args.chatter)
    print(f"{len(tale.turns)} turns, {len(FACTS)} facts, {len(tale.updated)} updated; k={args.k}")
    modes = args.modes.split(",") + (["extract"] if args.extract_model else [])
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "memory.sqlite3"
            if mode == "extract":
                figures, line = extract_mode(args, tale, path)
                print(line)
            else:
                backend, ids = build(args.store or path, tale, embed=mode == "hybrid")
                figures = score(turn_search(backend), tale, ids, args.k)
                backend.shutdown_sync()
        results[mode] = figures
        shown = "  ".join(f"{kind} {value:.2f}" for kind, value in figures.items())
        print(f"{mode:8} recall@{args.k}: {shown}")
    if "extract" in results and "hybrid" in results:
        base, extracted = results["hybrid"], results["extract"]
        shown = "  ".join(f"{kind} {extracted[kind] - base[kind]:+.2f}" for kind in base)
        print(f"extraction adds over hybrid: {shown}")


if __name__ == "__main__":
    main()
