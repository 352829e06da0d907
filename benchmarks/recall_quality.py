"""Recall quality of the local backend: recall@k on lexical, paraphrase and update questions.

40 facts told over eight simulated weeks among 1,500 turns of coding chatter (recall_facts.py),
asked in new conversations. A lexical or paraphrase question is a hit when a memory of its fact
(the first telling or its update) is among the top k; an update question is a hit when the
update is among the top k and the older value is not ranked above it.
Modes: `lexical` (FTS5 BM25 alone, what the CLI does) and `hybrid` (with the embedding model).
Usage: python benchmarks/recall_quality.py [--k 5] [--modes lexical,hybrid] [--shortlist-share 0.03]
(--shortlist-share: the vector shortlist as the share of the store it is at 100k memories.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recall_facts import FACTS, NOW, Story, story

from memproxy_cli.memory.local import LocalMemoryBackend

SCOPE = "bench"


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


def score(backend: LocalMemoryBackend, tale: Story, ids: list[str], k: int) -> dict[str, float]:
    hits = {"lexical": 0, "paraphrase": 0, "update": 0}
    totals = {"lexical": 0, "paraphrase": 0, "update": 0}
    for fact in FACTS:
        versions = {ids[tale.told[fact.key]]}
        if fact.key in tale.updated:
            versions.add(ids[tale.updated[fact.key]])
        for kind, question in (("lexical", fact.lexical), ("paraphrase", fact.paraphrase)):
            found = [m.id for m in backend.search_sync(SCOPE, question, k, now=NOW)]
            totals[kind] += 1
            hits[kind] += bool(versions & set(found))
        if fact.update_question and fact.key in tale.updated:
            found = [m.id for m in backend.search_sync(SCOPE, fact.update_question, k, now=NOW)]
            new, old = ids[tale.updated[fact.key]], ids[tale.told[fact.key]]
            totals["update"] += 1
            ok = new in found and (old not in found or found.index(old) > found.index(new))
            hits["update"] += ok
    return {kind: hits[kind] / totals[kind] for kind in hits if totals[kind]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--modes", default="lexical,hybrid")
    parser.add_argument("--store", type=Path, help="keep the store here (default: temporary)")
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
    tale = story()
    print(f"{len(tale.turns)} turns, {len(FACTS)} facts, {len(tale.updated)} updated; k={args.k}")
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            path = args.store or Path(tmp) / "memory.sqlite3"
            backend, ids = build(path, tale, embed=mode == "hybrid")
            figures = score(backend, tale, ids, args.k)
            backend.shutdown_sync()
        shown = "  ".join(f"{kind} {value:.2f}" for kind, value in figures.items())
        print(f"{mode:8} recall@{args.k}: {shown}")


if __name__ == "__main__":
    main()
