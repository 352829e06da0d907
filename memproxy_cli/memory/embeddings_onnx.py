"""all-MiniLM-L6-v2's encoder as an ONNX graph, built at load time from the packaged weights.

The graph is written straight to the ONNX protobuf wire format (the few message types below),
so the `onnx` package is not a dependency; onnxruntime parses and runs it with its fused CPU
kernels (com.microsoft Attention or MultiHeadAttention, SkipLayerNormalization, BiasGelu/Gelu).
The dense weights are, by `kind`:
- "int8-blocks" (shipped): MatMulNBits, 8-bit weights with one scale per `BLOCK` inputs of each
  output, the activations quantized per block as well (accuracy_level 4, int8 compute);
- "int8-columns": DynamicQuantizeMatMul, one scale per output and one per activation tensor
  (faster, less faithful: measured in benchmarks/bench_embed.py);
- "fp32": float32 MatMul.
Input: the summed embeddings (batch, length, 384) float32 and the mask (batch, length) int32;
output: the last hidden states (batch, length, 384), pooled by the caller.
Only the daemon imports this module.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

DIM = 384
LAYERS = 6
HEADS = 12
EPS = 1e-12
BLOCK = 32  # inputs per int8 scale in "int8-blocks" (128 is faster, less faithful: bench_embed)
_MS = "com.microsoft"
Kind = Literal["int8-blocks", "int8-columns", "fp32"]
_F = npt.NDArray[np.float32]

# TensorProto.DataType
_FLOAT, _UINT8, _INT8, _INT32 = 1, 2, 3, 6
_DTYPES = {
    np.dtype(np.float32): _FLOAT,
    np.dtype(np.uint8): _UINT8,
    np.dtype(np.int8): _INT8,
    np.dtype(np.int32): _INT32,
}
# AttributeProto.AttributeType
_ATTR_FLOAT, _ATTR_INT = 1, 2


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # a negative int64 is sent as its two's complement
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def _str(field: int, value: str) -> bytes:
    return _bytes(field, value.encode())


def _tensor(name: str, value: npt.NDArray[np.generic]) -> bytes:
    dims = b"".join(_int(1, d) for d in value.shape)
    raw = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False)
    return dims + _int(2, _DTYPES[value.dtype]) + _str(8, name) + _bytes(9, raw.tobytes())


def _value_info(name: str, elem_type: int, dims: tuple[str | int, ...]) -> bytes:
    shape = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, elem_type) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def _attr(name: str, value: int | float) -> bytes:
    if isinstance(value, float):
        return _str(1, name) + _key(2, 5) + struct.pack("<f", value) + _int(20, _ATTR_FLOAT)
    return _str(1, name) + _int(3, value) + _int(20, _ATTR_INT)


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.initializers: list[bytes] = []
        self._count = 0

    def const(self, name: str, value: npt.NDArray[np.generic]) -> str:
        self.initializers.append(_tensor(name, value))
        return name

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs: int | float) -> str:
        return self.node(op_type, inputs, 1, domain, **attrs)[0]

    def split(self, value: str, parts: int) -> list[str]:
        """`value` cut into `parts` equal pieces along its last axis."""
        return self.node("Split", [value], parts, axis=-1)

    def node(
        self, op_type: str, inputs: list[str], outputs: int, domain: str = "", **attrs: int | float
    ) -> list[str]:
        self._count += 1
        names = [f"t{self._count}.{j}" for j in range(outputs)]
        node = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in names)
        node += _str(3, f"n{self._count}") + _str(4, op_type)
        node += b"".join(_bytes(5, _attr(k, v)) for k, v in attrs.items())
        if domain:
            node += _str(7, domain)
        self.nodes.append(node)
        return names

    def serialize(self, inputs: list[bytes], output: str) -> bytes:
        graph = b"".join(_bytes(1, n) for n in self.nodes) + _str(2, "minilm")
        graph += b"".join(_bytes(5, t) for t in self.initializers)
        graph += b"".join(_bytes(11, i) for i in inputs)
        graph += _bytes(12, _value_info(output, _FLOAT, ("batch", "length", DIM)))
        opsets = _bytes(8, _str(1, "") + _int(2, 17)) + _bytes(8, _str(1, _MS) + _int(2, 1))
        return _int(1, 8) + _str(2, "memproxy") + opsets + _bytes(7, graph)


def _columns(w: _F) -> tuple[npt.NDArray[np.int8], _F]:
    """Symmetric int8 with one scale per output column: w ~ q * scale."""
    scale = np.maximum(np.abs(w).max(axis=0), 1e-8) / np.float32(127.0)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def _blocks(w: _F, block: int) -> tuple[npt.NDArray[np.uint8], _F]:
    """MatMulNBits' 8-bit layout: (out, in / block, block) as q + 128, one scale per block."""
    k, n = w.shape
    blocks = w.T.reshape(n, k // block, block)
    scale = np.maximum(np.abs(blocks).max(-1), 1e-8) / np.float32(127.0)
    q = np.clip(np.rint(blocks / scale[..., None]), -127, 127) + 128
    return q.astype(np.uint8), scale.astype(np.float32).reshape(-1)


def build(weights: Mapping[str, _F], kind: Kind = "int8-blocks", block: int = BLOCK) -> bytes:
    """The serialized ModelProto. `weights` holds the dense weights as (in, out)."""
    g = _Graph()
    fused_bias = kind == "fp32"  # float MatMul has no bias: the next fused op adds it
    x = g.op(
        "LayerNormalization",
        [
            "embedded",
            g.const("emb_ln_w", weights["embeddings.LayerNorm.weight"]),
            g.const("emb_ln_b", weights["embeddings.LayerNorm.bias"]),
        ],
        axis=-1,
        epsilon=EPS,
    )

    def dense(v: str, name: str, w: _F, b: _F) -> str:
        """v @ w (+ b when quantized)."""
        if kind == "int8-blocks":
            q, scale = _blocks(w, block)
            zero = np.full(scale.shape, 128, dtype=np.uint8)
            inputs = [v, g.const(name + ".q", q), g.const(name + ".s", scale)]
            inputs += [g.const(name + ".z", zero), "", g.const(name + ".b", b)]
            k, n = w.shape
            return g.op(
                "MatMulNBits", inputs, _MS, K=k, N=n, bits=8, block_size=block, accuracy_level=4
            )
        if kind == "int8-columns":
            q8, scale = _columns(w)
            inputs = [v, g.const(name + ".q", q8), g.const(name + ".s", scale), ""]
            return g.op("DynamicQuantizeMatMul", [*inputs, g.const(name + ".b", b)], _MS)
        return g.op("MatMul", [v, g.const(name + ".w", w)])

    def skip_norm(v: str, residual: str, p: str, ln: str, bias: str) -> str:
        inputs = [v, residual, g.const(p + ln + ".w", weights[p + ln + ".weight"])]
        inputs.append(g.const(p + ln + ".b", weights[p + ln + ".bias"]))
        if fused_bias:
            inputs.append(g.const(p + bias + ".b", weights[p + bias + ".bias"]))
        return g.op("SkipLayerNormalization", inputs, _MS, epsilon=EPS)

    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        names = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
        wqkv = np.concatenate([weights[n + ".weight"] for n in names], axis=1)
        bqkv = np.concatenate([weights[n + ".bias"] for n in names])
        if fused_bias:
            qkv = [x, g.const(p + "qkv.w", wqkv), g.const(p + "qkv.b", bqkv), "mask"]
            context = g.op("Attention", qkv, _MS, num_heads=HEADS)
        else:
            q, k, v = g.split(dense(x, p + "qkv", wqkv, bqkv), 3)
            context = g.op("MultiHeadAttention", [q, k, v, "", "mask"], _MS, num_heads=HEADS)
        o = "attention.output.dense"
        attn = dense(context, p + o, weights[p + o + ".weight"], weights[p + o + ".bias"])
        x = skip_norm(attn, x, p, "attention.output.LayerNorm", o)
        n = "intermediate.dense"
        inner = dense(x, p + n, weights[p + n + ".weight"], weights[p + n + ".bias"])
        if fused_bias:
            inner = g.op("BiasGelu", [inner, g.const(p + n + ".b", weights[p + n + ".bias"])], _MS)
        else:
            inner = g.op("Gelu", [inner], _MS)
        o2 = "output.dense"
        out = dense(inner, p + o2, weights[p + o2 + ".weight"], weights[p + o2 + ".bias"])
        x = skip_norm(out, x, p, "output.LayerNorm", o2)
    inputs = [
        _value_info("embedded", _FLOAT, ("batch", "length", DIM)),
        _value_info("mask", _INT32, ("batch", "length")),
    ]
    return g.serialize(inputs, x)


def session(weights: Mapping[str, _F], kind: Kind = "int8-blocks", block: int = BLOCK) -> Any:
    """An onnxruntime session over the built graph: one thread, sequential, and no memory arena
    (with it, one batch of 32 long turns left the process 170 MB larger for good)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    graph = build(weights, kind, block)
    run = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    del graph
    # The Python wrapper keeps the serialized graph (11 MB) for a provider fallback this CPU-only
    # session never makes.
    if getattr(run, "_model_bytes", None) is not None:
        run._model_bytes = None
    return run
