"""What an ONNX Runtime ``.ort`` file holds (ORT's serialized, already optimized format).

``onnx.load`` cannot read an ``.ort`` file: it is a FlatBuffers document, not
protobuf. Two readers are used instead.

Decisions
---------
- Inputs and outputs (names, shapes with their symbolic dims, dtypes) come
  from an ``onnxruntime.InferenceSession`` built on the file (CPU, one
  thread): what the runtime itself will expose, and proof that this
  onnxruntime can load the file at all. Building a session maps the weights
  but runs nothing (about 0.1 s for Moonshine's 42 MB decoder).
- Op types, opsets, producer and initializers come from the FlatBuffers
  schema that ships inside onnxruntime
  (``onnxruntime.tools.ort_format_model.ort_flatbuffers_py``), walking the
  main graph and every subgraph (If / Loop bodies), as ``onnx_file`` does.
  Initializer sizes are declared dims x dtype size.
- ``quantized`` uses the ONNX reader's rule (quantization ops, or 8-bit
  initializers holding at least half the bytes). Moonshine's files store int8
  weights that the graph turns back into float with ``Cast`` + ``Mul`` on every
  call (no quantization op), so the 8-bit-bytes rule is what marks them.
- Quantization does not apply to an ``.ort`` file: ONNX Runtime's
  quantization tools (notebook 01) need an ``.onnx`` graph, and ORT applies
  no further graph optimizations to this format when loading it.
  ``quantization_note`` says so in the inventory.
- Other files in the same folder (Moonshine's decoder and tokenizer beside
  its encoder) are listed under ``companion_files`` with their sizes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from saraikit.core.errors import ModelError
from saraikit.models.onnx_file import dominant_dtype, looks_quantized, onnx_dtype_name, quant_evidence

QUANTIZATION_NOTE = (
    "not applicable: an .ort file is ONNX Runtime's serialized, already optimized format; the quantization "
    "tools (notebook 01) need the .onnx graph it was converted from"
)

# onnxruntime's NodeArg type strings -> numpy-style names (as onnx_file reports dtypes).
_ORT_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "bool": "bool", "string": "str"}


def describe_ort(path: Path) -> tuple[int, dict]:
    """Size on disk and the details of the ``.ort`` file at ``path``."""
    model = _flatbuffer_model(path)
    session = _session(path)
    graphs = list(_all_graphs(model.Graph()))
    histogram = Counter(node.OpType().decode() for graph in graphs for node in _nodes(graph))
    initializers = [graph.Initializers(i) for graph in graphs for i in range(graph.InitializersLength())]
    sizes = [(onnx_dtype_name(t.DataType()), _tensor_bytes(t)) for t in initializers]
    evidence = quant_evidence(histogram, sizes)
    details = {
        "inputs": [_value_info(v) for v in session.get_inputs()],
        "outputs": [_value_info(v) for v in session.get_outputs()],
        "opsets": _opsets(model, graphs),
        "ir_version": int(model.IrVersion()),
        "producer": f"{_text(model.ProducerName())} {_text(model.ProducerVersion())}".strip(),
        "op_histogram": dict(histogram.most_common()),
        "n_nodes": sum(histogram.values()),
        "n_subgraphs": len(graphs) - 1,
        "parameters": sum(_numel(t) for t in initializers),
        "initializer_bytes": evidence["initializer_bytes"],
        "weight_dtype": dominant_dtype(sizes),
        "quantized": looks_quantized(evidence),
        "quantization_evidence": evidence,
        "quantization_note": QUANTIZATION_NOTE,
        "companion_files": {p.name: p.stat().st_size for p in sorted(path.parent.iterdir())
                            if p.is_file() and p != path and not p.name.startswith(".")},
    }
    return path.stat().st_size, details


def _flatbuffer_model(path: Path):
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    buffer = bytearray(path.read_bytes())
    root = fbs.InferenceSession.InferenceSession
    if len(buffer) < 8 or not root.InferenceSessionBufferHasIdentifier(buffer, 0):
        raise ModelError(f"{path}: not an ONNX Runtime .ort model (no ORT FlatBuffers identifier; "
                         "truncated, or another format under an .ort name?)")
    try:
        model = root.GetRootAsInferenceSession(buffer, 0).Model()
    except Exception as exc:  # flatbuffers raises plain struct / index errors on damaged data
        raise ModelError(f"{path}: unreadable .ort model ({type(exc).__name__}: {exc})") from exc
    if model is None or model.Graph() is None:
        raise ModelError(f"{path}: .ort file without a model graph")
    return model


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's pybind errors have no common public base
        raise ModelError(f"{path}: onnxruntime {ort.__version__} cannot load this .ort model: {exc}") from exc


def _nodes(graph):
    return (graph.Nodes(i) for i in range(graph.NodesLength()))


def _all_graphs(graph):
    """The graph and, recursively, every subgraph held by node attributes."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    kinds = fbs.AttributeType.AttributeType
    yield graph
    for node in _nodes(graph):
        for j in range(node.AttributesLength()):
            attribute = node.Attributes(j)
            if attribute.Type() == kinds.GRAPH:
                yield from _all_graphs(attribute.G())
            elif attribute.Type() == kinds.GRAPHS:
                for k in range(attribute.GraphsLength()):
                    yield from _all_graphs(attribute.Graphs(k))


def _opsets(model, graphs) -> dict[str, int]:
    """Opsets of the domains the graph uses (ORT-format files import every domain ORT knows)."""
    used = {node.Domain().decode() or "ai.onnx" for graph in graphs for node in _nodes(graph)}
    opsets = {}
    for i in range(model.OpsetImportLength()):
        opset = model.OpsetImport(i)
        domain = _text(opset.Domain()) or "ai.onnx"
        if domain in used:
            opsets[domain] = int(opset.Version())
    return opsets


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def _numel(tensor) -> int:
    dims = [tensor.Dims(k) for k in range(tensor.DimsLength())]
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def _tensor_bytes(tensor) -> int:
    try:
        itemsize = np.dtype(onnx_dtype_name(tensor.DataType())).itemsize
    except TypeError:  # 4-bit and other sub-byte types
        itemsize = 1
    return _numel(tensor) * itemsize


def _value_info(value) -> dict:
    """A session NodeArg as ``{"name", "shape", "dtype"}`` (symbolic dims by name, unknown as "?")."""
    kind = value.type
    dtype = kind[len("tensor("):-1] if kind.startswith("tensor(") else kind
    shape = [d if isinstance(d, (int, str)) else "?" for d in value.shape] if value.shape is not None else None
    return {"name": value.name, "shape": shape, "dtype": _ORT_TYPES.get(dtype, dtype)}
