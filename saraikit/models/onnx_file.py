"""What an ONNX file holds, read without running it or loading its weights.

Decisions
---------
- The file is read with ``onnx.load(path, load_external_data=False)``: the
  graph and tensor headers only. Initializers stored in external files are
  counted from their declared dims and dtype; the files are listed, and missing
  ones are reported in ``external_data_missing`` (not an error: inspection does
  not need the weights). Protobuf parses some garbage without complaint, so a
  parsed model without ``ir_version``, opsets or graph outputs is rejected.
- The op histogram counts nodes of the main graph and of every subgraph
  (If / Loop / Scan bodies, recursively). Model-local function bodies are not
  expanded; their call sites are counted under the function's name.
- ``quantized`` is True when the graph holds quantization operators
  (QLinear*, MatMulInteger, ConvInteger, DynamicQuantizeLinear,
  (De)QuantizeLinear, MatMulNBits and friends) or when 8-bit (int8/uint8)
  initializers hold at least half of the initializer bytes. The counts behind
  the verdict are kept in ``quantization_evidence``.
- A Piper voice config next to the file (``<model>.onnx.json``) is summarised
  under ``sidecar``: it holds the voice's sample rate and language.
- ``details`` holds only plain JSON-serialisable values so it can be stored
  next to benchmark results.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

from saraikit.core.errors import ModelError

QUANT_OPS = (
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "DequantizeLinear",
)
"""Quantization operators always listed in the evidence (0 when absent)."""

EXTRA_QUANT_OPS = frozenset(
    {
        "MatMulNBits",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "DynamicQuantizeLSTM",
        "QGemm",
        "QAttention",
        "QEmbedLayerNormalization",
        "GatherBlockQuantized",
    }
)
"""Other (mostly com.microsoft) quantized operators, listed when present."""


def is_quant_op(op_type: str) -> bool:
    return op_type.startswith("QLinear") or op_type in QUANT_OPS or op_type in EXTRA_QUANT_OPS


def describe_onnx(path: Path) -> tuple[int, dict]:
    """Size on disk (with external data files) and the details of the ONNX file at ``path``."""
    model = _load_onnx(path)
    graphs = list(_all_graphs(model.graph))
    initializers = [t for g in graphs for t in g.initializer]
    external = _external_files(initializers, path.parent)
    size = path.stat().st_size + sum(
        (path.parent / f).stat().st_size for f in external["present"]
    )
    histogram = Counter(n.op_type for g in graphs for n in g.node)
    sizes = [(onnx_dtype_name(t.data_type), _tensor_bytes(t)) for t in initializers]
    evidence = quant_evidence(histogram, sizes)
    details = {
        "inputs": [_value_info(v) for v in _true_inputs(model.graph)],
        "outputs": [_value_info(v) for v in model.graph.output],
        "opsets": {_domain(o.domain): int(o.version) for o in model.opset_import},
        "ir_version": int(model.ir_version),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "op_histogram": dict(histogram.most_common()),
        "n_nodes": sum(histogram.values()),
        "n_subgraphs": len(graphs) - 1,
        "parameters": sum(_numel(t) for t in initializers),
        "initializer_bytes": sum(_tensor_bytes(t) for t in initializers),
        "weight_dtype": dominant_dtype(sizes),
        "quantized": looks_quantized(evidence),
        "quantization_evidence": evidence,
        "external_data_files": external["present"] + external["missing"],
        "external_data_missing": external["missing"],
    }
    sidecar = _piper_sidecar(path)
    if sidecar:
        details["sidecar"] = sidecar
    return size, details


def _load_onnx(path: Path):
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(
            f"{path}: not a readable ONNX model (truncated or not ONNX): {exc}"
        ) from exc
    if model.ir_version <= 0 or not model.opset_import or not model.graph.output:
        raise ModelError(
            f"{path}: not an ONNX model (no IR version, opset or graph outputs; "
            "a text file or a truncated download?)"
        )
    return model


def _all_graphs(graph) -> Iterable:
    """The graph and, recursively, every subgraph held by node attributes."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_graphs(attr.g)
            for sub in attr.graphs:
                yield from _all_graphs(sub)


def _true_inputs(graph) -> list:
    """Graph inputs that are not initializers (old IR versions list both)."""
    initializer_names = {t.name for t in graph.initializer}
    return [v for v in graph.input if v.name not in initializer_names]


def _domain(domain: str) -> str:
    return domain or "ai.onnx"


def onnx_dtype_name(elem_type: int) -> str:
    """numpy-style name of an ONNX tensor element type (``float32``, ``int64``)."""
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _value_info(value) -> dict:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": value.name, "shape": None, "dtype": kind or "unknown"}
    tensor = value.type.tensor_type
    shape = [_dim(d) for d in tensor.shape.dim] if tensor.HasField("shape") else None
    return {"name": value.name, "shape": shape, "dtype": onnx_dtype_name(tensor.elem_type)}


def _dim(dim) -> int | str:
    """A static size, the symbolic name of a dynamic dim, or ``"?"``."""
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param") and dim.dim_param:
        return dim.dim_param
    return "?"


def _numel(tensor) -> int:
    return int(np.prod(tensor.dims, dtype=np.int64)) if tensor.dims else 1


def _tensor_bytes(tensor) -> int:
    """Bytes of an initializer from its dims and dtype (works for external data)."""
    if tensor.raw_data:
        return len(tensor.raw_data)
    name = onnx_dtype_name(tensor.data_type)
    try:
        itemsize = np.dtype(name).itemsize
    except TypeError:  # 4-bit and other sub-byte types
        itemsize = 1
    return _numel(tensor) * itemsize


def dominant_dtype(sizes: list[tuple[str, int]]) -> str | None:
    """The dtype holding most initializer bytes, from (dtype name, bytes) pairs."""
    by_dtype = Counter()
    for dtype, size in sizes:
        by_dtype[dtype] += size
    return by_dtype.most_common(1)[0][0] if by_dtype else None


def _external_files(initializers, folder: Path) -> dict:
    import onnx

    files = set()
    for tensor in initializers:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entry = {e.key: e.value for e in tensor.external_data}
            if "location" in entry:
                files.add(entry["location"])
    present = sorted(f for f in files if (folder / f).is_file())
    missing = sorted(files - set(present))
    return {"present": present, "missing": missing}


def quant_evidence(histogram: Counter, sizes: list[tuple[str, int]]) -> dict:
    """Quantization op counts and 8-bit initializer counts/bytes, from the op histogram and
    (dtype name, bytes) per initializer; shared by the ONNX and ORT-format readers."""
    evidence = {op: histogram.get(op, 0) for op in QUANT_OPS}
    for op, count in sorted(histogram.items()):
        if is_quant_op(op) and op not in evidence:
            evidence[op] = count
    eight_bit = [(dtype, size) for dtype, size in sizes if dtype in ("int8", "uint8")]
    evidence["int8_initializers"] = sum(dtype == "int8" for dtype, _ in eight_bit)
    evidence["uint8_initializers"] = sum(dtype == "uint8" for dtype, _ in eight_bit)
    evidence["8bit_initializer_bytes"] = sum(size for _, size in eight_bit)
    evidence["initializer_bytes"] = sum(size for _, size in sizes)
    return evidence


def looks_quantized(evidence: dict) -> bool:
    quant_nodes = sum(v for k, v in evidence.items() if is_quant_op(k))
    total = evidence["initializer_bytes"]
    mostly_8bit = total > 0 and evidence["8bit_initializer_bytes"] * 2 >= total
    return quant_nodes > 0 or mostly_8bit


def _piper_sidecar(path: Path) -> dict | None:
    """Summary of a Piper voice config (``<model>.onnx.json``) when present."""
    config_path = path.with_name(path.name + ".json")
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_path}: unreadable voice config: {exc}") from exc
    audio = config.get("audio", {})
    language = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice")
    return {
        "file": config_path.name,
        "sample_rate": audio.get("sample_rate"),
        "quality": audio.get("quality"),
        "language": language,
        "num_speakers": config.get("num_speakers"),
        "num_symbols": config.get("num_symbols"),
        "phoneme_type": config.get("phoneme_type"),
        "inference": config.get("inference"),
        "piper_version": config.get("piper_version"),
    }
