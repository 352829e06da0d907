"""The embedding runtime against the float32 numpy reference, interleaved in one run.

Runtimes: `numpy` (embeddings.reference_hidden, the encoder as it ran before onnxruntime),
and the ONNX graph (embeddings_onnx.py) in onnxruntime with its dense weights `ort-fp32`
(float32), `ort-int8-columns` (DynamicQuantizeMatMul), `ort-int8-blocks128` and
`ort-int8-blocks` (MatMulNBits, 8 bits, a scale per 128 or per 32 inputs: as shipped).
Reports CPU per question (time.thread_time, the questions and statements of recall_facts.py,
each runtime in turn on each question), CPU per stored turn (128-word-piece texts in batches
of 32), the cosine of each runtime's vectors to the reference's, and the time to build each
session.
`--rss R` instead loads runtime R alone in this process and prints its RSS after a few batches
(the C heap trimmed) and its peak.
Usage: python benchmarks/bench_embed.py [--repeat 3] [--texts 1000]
       python benchmarks/bench_embed.py --rss numpy|ort-fp32|ort-int8-blocks
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# embeddings first: it sets numpy's BLAS threads before numpy loads
from memproxy_cli.memory import embeddings as e  # noqa: I001

import numpy as np
from recall_facts import FACTS, story

Encode = Callable[[list[str]], e.Vectors]
RUNTIMES = ("numpy", "ort-fp32", "ort-int8-columns", "ort-int8-blocks128", "ort-int8-blocks")


def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(e.model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=e.MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


def runtimes(names: tuple[str, ...]) -> tuple[dict[str, Encode], dict[str, float]]:
    """Each runtime's encoder (texts -> unit vectors) and its build time in CPU seconds."""
    from memproxy_cli.memory.embeddings_onnx import session

    weights = e.load_weights()
    tokenizer = _tokenizer()
    encoders: dict[str, Encode] = {}
    built: dict[str, float] = {}

    def tokens(texts: list[str]) -> tuple[Any, Any]:
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([x.ids for x in encodings], dtype=np.int64)
        return ids, np.array([x.attention_mask for x in encodings], dtype=np.int32)

    for name in names:
        if name == "numpy":

            def numpy_encode(texts: list[str]) -> e.Vectors:
                ids, mask = tokens(texts)
                m = mask.astype(np.float32)
                return e.pooled(e.reference_hidden(weights, ids, m), m)

            encoders[name] = numpy_encode
            built[name] = 0.0
            continue
        start = time.process_time()
        if name == "ort-int8-blocks128":
            run = session(weights, "int8-blocks", block=128)
        else:
            run = session(weights, name.removeprefix("ort-"))  # type: ignore[arg-type]
        built[name] = time.process_time() - start

        def ort_encode(texts: list[str], run: Any = run) -> e.Vectors:
            ids, mask = tokens(texts)
            hidden = run.run(None, {"embedded": e.embedded(weights, ids), "mask": mask})[0]
            return e.pooled(hidden, mask.astype(np.float32))

        encoders[name] = ort_encode
    if "numpy" not in names:  # only the embedding tables are read then (as in MiniLM)
        for key in [k for k in weights if not k.startswith("embeddings.")]:
            del weights[key]
    return encoders, built


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def compare(repeat: int, n_texts: int) -> None:
    questions = [q for f in FACTS for q in (f.lexical, f.paraphrase, f.update_question) if q]
    questions += [s for f in FACTS for s in (f.said, f.update) if s]
    turns = story().turns
    long = [f"{t.user} {t.assistant} " * 8 for t in turns[:256]]  # clipped to 128 word pieces
    seen: dict[str, None] = dict.fromkeys(q for q in questions)
    for t in turns:
        seen.setdefault(t.user)
    for t in turns:  # the chatter is made of templates: its turns whole are more varied
        seen.setdefault(f"{t.user} {t.assistant}")
    texts = list(seen)[:n_texts]
    encoders, built = runtimes(RUNTIMES)
    for encode in encoders.values():
        encode(questions[:4])  # warm
    per_question: dict[str, list[float]] = {n: [] for n in encoders}
    per_turn: dict[str, list[float]] = {n: [] for n in encoders}
    names = list(encoders)
    for r in range(repeat):
        for i, q in enumerate(questions):
            order = names[(i + r) % len(names) :] + names[: (i + r) % len(names)]
            for name in order:
                start = time.thread_time()
                encoders[name]([q])
                per_question[name].append(time.thread_time() - start)
        for b in range(0, len(long), 32):
            for name in names:
                start = time.thread_time()
                encoders[name](long[b : b + 32])
                per_turn[name].append((time.thread_time() - start) / len(long[b : b + 32]))
    reference = np.concatenate(
        [encoders["numpy"](texts[i : i + 32]) for i in range(0, len(texts), 32)]
    )
    pieces = [len(t) for t in _pieces(questions)]
    print(
        f"{len(questions)} questions ({min(pieces)}-{max(pieces)} word pieces, median "
        f"{statistics.median(pieces):.0f}) x {repeat}; {len(long)} stored turns of 128 pieces "
        f"in batches of 32 x {repeat}; cosines over {len(texts)} texts"
    )
    print(
        f"{'runtime':16} {'question p50':>12} {'p99':>6} {'turn p50':>9} {'cos min':>8} "
        f"{'cos median':>10} {'build s':>8}"
    )
    for name in names:
        vectors = np.concatenate(
            [encoders[name](texts[i : i + 32]) for i in range(0, len(texts), 32)]
        )
        cosines = (vectors * reference).sum(1)
        q50, q99 = (1e3 * pct(per_question[name], q) for q in (0.5, 0.99))
        print(
            f"{name:16} {q50:10.2f}ms {q99:6.2f} "
            f"{1e3 * pct(per_turn[name], 0.5):7.2f}ms {cosines.min():8.4f} "
            f"{np.median(cosines):10.4f} {built[name]:8.3f}"
        )


def _pieces(texts: list[str]) -> list[list[int]]:
    tokenizer = _tokenizer()
    return [tokenizer.encode(t).ids for t in texts]


def rss(name: str) -> None:
    start = time.process_time()
    if name == "ort-int8-blocks":  # as the daemon holds it
        model = e.MiniLM()
        encode: Encode = model.encode
        print(f"MiniLM() loaded in {time.process_time() - start:.2f} s CPU")
    else:
        encoders, _ = runtimes((name,))
        encode = encoders[name]
    for _ in range(3):
        encode([f"{t.user} {t.assistant}" * 4 for t in story().turns[:32]])
        encode(["Which port does the staging database listen on?"])
    e._trim_heap()  # as MiniLM does after a batch, and the daemon after loading
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(f"{name}: RSS {status['VmRSS'].strip()}, peak {status['VmHWM'].strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rss", choices=RUNTIMES)
    args = parser.parse_args()
    if args.rss:
        rss(args.rss)
    else:
        compare(args.repeat, args.texts)


if __name__ == "__main__":
    main()
