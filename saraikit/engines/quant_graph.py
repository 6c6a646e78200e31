"""Facts read from an ONNX graph before and after quantizing: what is quantizable, excluded, already quantized.

Decisions
---------
- "Quantizable" means a node whose type the variant's ORT registry quantizes
  (dynamic: ``IntegerOpsRegistry``; static: ``QDQRegistry`` or
  ``QLinearOpsRegistry``), that is one of the weight-carrying types in
  :data:`WEIGHTED_OP_TYPES` and has a float initializer input (its weight).
  Quantizing only elementwise ops (Add, Relu) or activation-by-activation
  MatMuls shrinks nothing and mostly adds (de)quantize work, so such graphs
  are skipped.
- ``op_types_to_exclude`` is implemented, as ORT has no such argument, by
  listing the names of the main graph's nodes of those types in
  ``nodes_to_exclude``. ``nodes_to_exclude`` accepts exact names or glob
  patterns (``"/dp/*"``); a pattern that matches no node is a ConfigError (a
  typo would otherwise quantize everything), and so is an excluded node
  without a name (ORT excludes by name, and ``""`` would exclude every
  unnamed node). Subgraphs (If / Loop bodies) are not quantized: ORT's
  ``EnableSubgraph`` is off unless a variant sets it in ``extra_options``.
- A missing or unreadable model is a ModelError. So is an ONNX Runtime
  ``.ort`` file: quantization does not apply to it (see
  :data:`saraikit.models.ort_file.QUANTIZATION_NOTE`).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import Counter
from pathlib import Path

import onnx

from saraikit.core.errors import ConfigError, ModelError
from saraikit.engines.quant_variants import Variant
from saraikit.models.inspect import inspect_model
from saraikit.models.onnx_file import is_quant_op
from saraikit.models.ort_file import QUANTIZATION_NOTE

WEIGHTED_OP_TYPES = frozenset(
    {"MatMul", "Gemm", "Conv", "ConvTranspose", "Attention", "LSTM", "Gather", "GatherElements",
     "EmbedLayerNormalization"}
)
"""Op types that carry weights and have integer kernels in ORT."""

FLOAT_TENSOR_TYPES = frozenset({1, 10, 11, 16})  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


def existing_model(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() == ".ort":
        raise ModelError(f"{path}: {QUANTIZATION_NOTE}")
    if not path.is_file():
        raise ModelError(f"ONNX model not found: {path}")
    return path


def load_graph(path: Path):
    try:
        return onnx.load(str(path), load_external_data=False).graph
    except Exception as error:  # noqa: BLE001 - protobuf raises several types
        raise ModelError(f"{path}: not a readable ONNX model ({type(error).__name__}: {error})") from error


def check_model(path: Path) -> None:
    onnx.checker.check_model(str(path))  # the path form also checks external data


def excluded_nodes(graph, variant: Variant) -> list[str]:
    """Node names to exclude: the variant's names/patterns plus every node of its excluded op types."""
    names = [node.name for node in graph.node]
    unnamed = [node.op_type for node in graph.node if not node.name and node.op_type in variant.op_types_to_exclude]
    if unnamed:
        raise ConfigError(
            f"variant {variant.name!r}: {len(unnamed)} {sorted(set(unnamed))} node(s) have no name, so they cannot "
            "be excluded (ONNX Runtime excludes by node name); name the nodes or use op_types_to_quantize"
        )
    excluded = {node.name for node in graph.node if node.op_type in variant.op_types_to_exclude}
    for pattern in variant.nodes_to_exclude:
        matched = [name for name in names if name and (name == pattern or fnmatch.fnmatchcase(name, pattern))]
        if not matched:
            raise ConfigError(f"variant {variant.name!r}: nodes_to_exclude entry {pattern!r} matches no node")
        excluded.update(matched)
    return sorted(excluded)


def quantizable_types(variant: Variant) -> set[str]:
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry, QLinearOpsRegistry

    if variant.method == "dynamic":
        registry = IntegerOpsRegistry
    else:
        registry = QDQRegistry if variant.quant_format == "QDQ" else QLinearOpsRegistry
    types = set(registry) & WEIGHTED_OP_TYPES
    if variant.op_types_to_quantize is not None:
        types &= set(variant.op_types_to_quantize)
    return types


def _has_float_weight(graph):
    weights = {t.name for t in graph.initializer if t.data_type in FLOAT_TENSOR_TYPES}
    return lambda node: bool(weights & set(node.input))


def quantizable_nodes(graph, variant: Variant, excluded: list[str]) -> list[str]:
    types, excluded, weighted = quantizable_types(variant), set(excluded), _has_float_weight(graph)
    return [
        node.name or node.op_type
        for node in graph.node
        if node.op_type in types and not (node.name and node.name in excluded) and weighted(node)
    ]


def float_weight_ops(graph) -> dict[str, int]:
    """Weighted ops still reading a float initializer, counted per op type."""
    weighted = _has_float_weight(graph)
    return dict(Counter(n.op_type for n in graph.node if n.op_type in WEIGHTED_OP_TYPES and weighted(n)))


def nothing_to_quantize(graph, variant: Variant, excluded: list[str]) -> str:
    """Why a graph has no node this variant quantizes (the row's reason)."""
    types = sorted(quantizable_types(variant))
    reason = f"no quantizable ops ({', '.join(types)} with float weights) in the graph"
    if excluded:
        everything = dataclasses.replace(variant, nodes_to_exclude=(), op_types_to_exclude=())
        n_without = len(quantizable_nodes(graph, everything, []))
        if n_without:
            reason += f": the variant excludes all {n_without} of them"
    return reason


def already_quantized(path: Path) -> str | None:
    """Why the model at ``path`` counts as quantized already, or None."""
    details = inspect_model(path).details
    if not details["quantized"]:
        return None
    evidence = details["quantization_evidence"]
    nodes = {op: n for op, n in evidence.items() if is_quant_op(op) and n}
    if nodes:
        listing = ", ".join(f"{op} {n}" for op, n in sorted(nodes.items()))
        return f"already quantized ({sum(nodes.values())} quantization nodes: {listing})"
    share = evidence["8bit_initializer_bytes"] / max(evidence["initializer_bytes"], 1)
    return f"already quantized (int8/uint8 initializers hold {share:.0%} of the weight bytes)"


def op_histogram(path: Path) -> dict[str, int]:
    return dict(inspect_model(path).details["op_histogram"])
