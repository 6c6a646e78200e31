"""What a model is, without running it: ONNX files, GGUF files, CTranslate2 folders.

``inspect_model(path)`` returns a :class:`ModelInfo` whose ``details`` hold the
format-specific facts. ``inventory_frame`` flattens many of them into one table,
and ``check_compatibility`` compares what pipeline stages expect and produce.

Decisions
---------
- Nothing here runs a model or loads its weights. ``details`` holds only plain
  JSON-serialisable values (str, int, float, bool, None, lists, dicts) so it
  can be stored as JSON next to benchmark results.
- ONNX is read with ``onnx.load(path, load_external_data=False)``: the graph
  and tensor headers only. Initializers stored in external files are counted
  from their declared dims and dtype; the files are listed, and missing ones
  are reported in ``external_data_missing`` (not an error: inspection does not
  need the weights). Protobuf parses some garbage without complaint, so a
  parsed model without ``ir_version``, opsets or graph outputs is rejected.
- The op histogram counts nodes of the main graph and of every subgraph
  (If / Loop / Scan bodies, recursively). Model-local function bodies are
  not expanded; their call sites are counted under the function's name.
- ``quantized`` is True when the graph holds quantization operators
  (QLinear*, MatMulInteger, ConvInteger, DynamicQuantizeLinear, (De)QuantizeLinear,
  MatMulNBits and friends) or when 8-bit (int8/uint8) initializers hold at least
  half of the initializer bytes. The counts behind the verdict are kept in
  ``quantization_evidence``.
- GGUF metadata is read by hand with ``struct`` over a read-only ``mmap``: the
  ``gguf`` package is not installed and llama-cpp-python would load the whole
  model. The format (github.com/ggml-org/ggml/blob/master/docs/gguf.md) is
  simple: magic ``GGUF``, uint32 version, uint64 tensor count, uint64 kv
  count, then typed key/values, then tensor infos (name, dims, ggml type,
  offset). Versions 2 and 3 are supported, in either byte order. Arrays longer
  than ``GGUF_ARRAY_KEEP`` items (the tokenizer vocabulary, scores) are
  skipped without being materialised and summarised as
  ``{"array": item_type, "length": n}``; string arrays still need one length
  read per item, which takes a few tens of milliseconds for 262k tokens.
- ``general.file_type`` is mapped to a name with llama.cpp's ``llama_ftype``
  table (``LLAMA_FTYPE_NAMES``). The dominant tensor type (the ggml type
  holding most weight elements) is reported as well because the file type can
  be absent or "guessed", and a "Q4_K_M" file mixes several tensor types.
- CTranslate2's ``model.bin`` header is parsed as its writer
  (``ctranslate2/specs/model_spec.py``, ``_serialize``) lays it out: uint32
  binary version, spec name, uint32 spec revision, uint32 variable count, then
  per variable: name, uint8 rank, uint32 dims, uint8 dtype id, uint32 byte
  count and the data (skipped with ``seek``), then aliases. Strings are a
  uint16 length (counting a trailing NUL) and the bytes. Binary versions 4 to 6
  are supported (older ones stored an item size instead of a dtype id).
  Rank-0 variables (num_heads, activation, ...) are small and their values are
  read. ``weight_dtype`` is the dtype holding most bytes among variables of
  rank >= 2.
- Whisper is recognised from the spec name or from the config keys
  (``alignment_heads``, ``suppress_ids``, ``lang_ids``). It is multilingual
  when its vocabulary has at least 51865 tokens (the rule CTranslate2 itself
  applies); English-only checkpoints still list language ids in their config.
  Its sample rate comes from ``preprocessor_config.json`` when present,
  otherwise it is the Whisper family's fixed 16000 Hz.

Compatibility scheme (``check_compatibility``)
-----------------------------------------------
A stack declares stages and the links between them::

    stages:
      vad:
        model: silero-vad
        produces: {sample_rate: 16000}
      stt:
        model: whisper-base
        expects: {sample_rate: 16000}
        produces: {language: multilingual}
        has: {n_mels: 80, hidden_size: 512}
      llm:
        model: gemma3-270m
        expects: {language: multilingual}
        produces: {language: en}
        has: {context_length: 32768, hidden_size: 640}
      tts:
        model: piper-en_US-joe-medium
        expects: {language: en, "input:input": [1, "?"]}
        produces: {sample_rate: 22050}
    links: [[vad, stt], [stt, llm], [llm, tts]]

- ``stages`` may be omitted: then every top-level key except ``links`` is a
  stage. ``links`` may be omitted: then the stages form a chain in order.
- A fact is a name and a value. Known names: ``sample_rate``, ``hidden_size``,
  ``n_mels``, ``language``, ``context_length``, ``vocab_size``, and tensor
  shapes ``input:<name>`` / ``output:<name>`` (a list such as ``[1, 80, 3000]``
  or a string ``"[1,80,3000]"``; ``"?"``, a symbolic name or null is a dynamic
  dim that matches any size). Other names are compared for equality.
  ``expects`` / ``produces`` may also be lists of strings such as
  ``"sample_rate=16000"`` or ``"input:mel[1,80,3000]"``.
- Declarations choose what is checked. On a link ``(producer, consumer)`` every
  fact the producer declares in ``produces`` or the consumer declares in
  ``expects`` gives one row. A side that did not declare the fact takes it
  from its inspected model (``model_facts``), e.g. a Whisper folder's
  ``d_model`` as ``hidden_size``, a Piper voice's sample rate from its
  ``.onnx.json``, an ONNX model's input shapes. Inspected facts that nobody
  declared are not compared (a text pipeline's STT and LLM hidden sizes differ
  and that is fine).
- Each stage's declarations are also checked against its own inspected model
  (rows with ``check == "stage"``; producer_value is the declared value,
  consumer_value the model's). A stage may also declare ``has: {...}``: facts
  about its own model (``n_mels``, ``hidden_size``, ``context_length``) that
  are checked against inspection only, never across links — this catches a
  swapped model file without adding noise to the links.
- Languages compare on their primary subtag (``en_US`` == ``en``);
  ``multilingual`` (or ``*``) matches any language.
- ``infos`` maps a stage's ``model`` name (or the stage name) to its
  :class:`ModelInfo`; stages without one use their declarations only.
- Every row has ``ok`` (bool) and ``status``: ``ok``, ``mismatch`` (ok=False)
  or ``unverified`` (ok=True: one side has no value, so nothing could be
  compared). Mismatches never raise; a link naming an unknown stage is a
  ``ConfigError``.
"""

from __future__ import annotations

import json
import mmap
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import yaml

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.audio import SAMPLE_RATE

# ---------------------------------------------------------------------------
# ModelInfo and dispatch
# ---------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """A model described without running it.

    ``format`` is ``"onnx"``, ``"gguf"`` or ``"ctranslate2"``; ``bytes`` is the
    size on disk (the folder total for CTranslate2, including external data
    files for ONNX); ``details`` holds the format-specific facts.
    """

    path: str
    format: str
    bytes: int
    details: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    return path


def inspect_model(path: str | Path) -> ModelInfo:
    """Describe the model at ``path``: a ``.onnx`` file, a ``.gguf`` file or a
    CTranslate2 folder. Raises ``ModelError`` naming the path on bad input."""
    path = _existing(path)
    if path.is_dir():
        return inspect_ctranslate2(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return inspect_onnx(path)
    if suffix == ".gguf":
        return inspect_gguf(path)
    raise ModelError(
        f"{path}: unknown model format {suffix or '(no extension)'!r}; "
        "expected a .onnx file, a .gguf file or a CTranslate2 folder"
    )


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

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


def inspect_onnx(path: str | Path) -> ModelInfo:
    path = _existing(path)
    model = _load_onnx(path)
    graphs = list(_all_graphs(model.graph))
    initializers = [t for g in graphs for t in g.initializer]
    external = _external_files(initializers, path.parent)
    size = path.stat().st_size + sum(
        (path.parent / f).stat().st_size for f in external["present"]
    )
    histogram = Counter(n.op_type for g in graphs for n in g.node)
    evidence = _quant_evidence(histogram, initializers)
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
        "weight_dtype": _onnx_weight_dtype(initializers),
        "quantized": _looks_quantized(evidence),
        "quantization_evidence": evidence,
        "external_data_files": external["present"] + external["missing"],
        "external_data_missing": external["missing"],
    }
    sidecar = _piper_sidecar(path)
    if sidecar:
        details["sidecar"] = sidecar
    return ModelInfo(str(path), "onnx", size, details)


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


def _onnx_weight_dtype(initializers) -> str | None:
    """The dtype holding most initializer bytes."""
    by_dtype = Counter()
    for tensor in initializers:
        by_dtype[onnx_dtype_name(tensor.data_type)] += _tensor_bytes(tensor)
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


def _quant_evidence(histogram: Counter, initializers) -> dict:
    evidence = {op: histogram.get(op, 0) for op in QUANT_OPS}
    for op, count in sorted(histogram.items()):
        if is_quant_op(op) and op not in evidence:
            evidence[op] = count
    eight_bit = [t for t in initializers if onnx_dtype_name(t.data_type) in ("int8", "uint8")]
    evidence["int8_initializers"] = sum(onnx_dtype_name(t.data_type) == "int8" for t in eight_bit)
    evidence["uint8_initializers"] = sum(onnx_dtype_name(t.data_type) == "uint8" for t in eight_bit)
    evidence["8bit_initializer_bytes"] = sum(_tensor_bytes(t) for t in eight_bit)
    evidence["initializer_bytes"] = sum(_tensor_bytes(t) for t in initializers)
    return evidence


def _looks_quantized(evidence: dict) -> bool:
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


# ---------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------

GGUF_ARRAY_KEEP = 64
"""Arrays with more items than this are summarised, not materialised."""

LLAMA_FTYPE_NAMES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",  # removed from llama.cpp
    5: "Q4_2",  # removed
    6: "Q4_3",  # removed
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    33: "Q4_0_4_4",  # removed, runtime repack now
    34: "Q4_0_4_8",  # removed
    35: "Q4_0_8_8",  # removed
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}
"""llama.cpp ``enum llama_ftype`` (llama.h), the value of ``general.file_type``."""

LLAMA_FTYPE_GUESSED = 1024

GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_2", 5: "Q4_3", 6: "Q5_0",
    7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K",
    13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
    18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 30: "BF16", 31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",
    34: "TQ1_0", 35: "TQ2_0", 36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8",
    38: "IQ4_NL_8_8", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
}  # fmt: skip
"""ggml ``enum ggml_type`` (ggml.h): the storage type of each tensor."""

GGUF_SCALAR_FORMATS = {
    0: ("B", "uint8"), 1: ("b", "int8"), 2: ("H", "uint16"), 3: ("h", "int16"),
    4: ("I", "uint32"), 5: ("i", "int32"), 6: ("f", "float32"), 7: ("?", "bool"),
    10: ("Q", "uint64"), 11: ("q", "int64"), 12: ("d", "float64"),
}  # fmt: skip
GGUF_STRING, GGUF_ARRAY = 8, 9
GGUF_UNQUANTIZED = {"F32", "F16", "BF16"}


class _Cursor:
    """Reads little- or big-endian values from a buffer at a moving offset."""

    def __init__(self, buffer, endian: str = "<"):
        self.buffer, self.endian, self.pos = buffer, endian, 0

    def read(self, fmt: str):
        values = struct.unpack_from(self.endian + fmt, self.buffer, self.pos)
        self.pos += struct.calcsize(self.endian + fmt)
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.buffer):
            raise struct.error("skip past the end of the file")
        self.pos += n

    def string(self) -> str:
        n = self.read("Q")
        self.skip(n)
        return bytes(self.buffer[self.pos - n : self.pos]).decode("utf-8", "replace")


def inspect_gguf(path: str | Path) -> ModelInfo:
    path = _existing(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{path}: bad GGUF magic (the file does not start with b'GGUF')")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            try:
                header = read_gguf_header(buffer, path)
            except struct.error as exc:
                raise ModelError(f"{path}: truncated GGUF header: {exc}") from exc
    details = _gguf_details(header)
    return ModelInfo(str(path), "gguf", size, details)


def read_gguf_header(buffer, path: Path | str = "<buffer>") -> dict:
    """Version, metadata key/values and tensor infos of a GGUF file in ``buffer``.

    Raises ``struct.error`` when the buffer ends early."""
    cursor = _Cursor(buffer)
    cursor.skip(4)
    version = cursor.read("I")
    if version > 0xFFFF:  # a big-endian file reads as a huge little-endian number
        cursor.endian, cursor.pos = ">", 4
        version = cursor.read("I")
    if version not in (2, 3):
        raise ModelError(f"{path}: unsupported GGUF version {version} (2 and 3 are supported)")
    n_tensors, n_kv = cursor.read("QQ")
    metadata = {}
    for _ in range(n_kv):
        key = cursor.string()
        metadata[key] = _gguf_value(cursor, cursor.read("I"), path)
    tensors = [_gguf_tensor_info(cursor) for _ in range(n_tensors)]
    return {"version": version, "metadata": metadata, "tensors": tensors}


def _gguf_value(cursor: _Cursor, value_type: int, path):
    if value_type == GGUF_STRING:
        return cursor.string()
    if value_type == GGUF_ARRAY:
        return _gguf_array(cursor, path)
    if value_type not in GGUF_SCALAR_FORMATS:
        raise ModelError(f"{path}: unknown GGUF value type {value_type}")
    fmt, name = GGUF_SCALAR_FORMATS[value_type]
    value = cursor.read(fmt)
    return float(str(np.float32(value))) if name == "float32" else value


def _gguf_array(cursor: _Cursor, path):
    item_type, length = cursor.read("IQ")
    if length <= GGUF_ARRAY_KEEP:
        return [_gguf_value(cursor, item_type, path) for _ in range(length)]
    if item_type == GGUF_STRING:
        for _ in range(length):
            cursor.skip(cursor.read("Q"))
        return {"array": "string", "length": length}
    if item_type not in GGUF_SCALAR_FORMATS:
        raise ModelError(f"{path}: cannot skip a GGUF array of type {item_type}")
    fmt, name = GGUF_SCALAR_FORMATS[item_type]
    cursor.skip(struct.calcsize(fmt) * length)
    return {"array": name, "length": length}


def _gguf_tensor_info(cursor: _Cursor) -> dict:
    name = cursor.string()
    n_dims = cursor.read("I")
    dims = [cursor.read("Q") for _ in range(n_dims)]
    ggml_type, _offset = cursor.read("IQ")
    return {"name": name, "shape": dims, "type": GGML_TYPE_NAMES.get(ggml_type, f"type{ggml_type}")}


def llama_ftype_name(file_type: int | None) -> str | None:
    """``general.file_type`` as llama.cpp names it, e.g. 15 -> ``Q4_K_M``."""
    if file_type is None:
        return None
    guessed = bool(file_type & LLAMA_FTYPE_GUESSED)
    base = file_type & ~LLAMA_FTYPE_GUESSED
    name = LLAMA_FTYPE_NAMES.get(base, f"ftype{base}")
    return f"{name} (guessed)" if guessed else name


def _gguf_details(header: dict) -> dict:
    meta, tensors = header["metadata"], header["tensors"]
    arch = meta.get("general.architecture")
    template = meta.get("tokenizer.chat_template")
    tensor_types = Counter(t["type"] for t in tensors)
    weight_types = Counter()
    for t in tensors:
        if len(t["shape"]) >= 2:
            weight_types[t["type"]] += int(np.prod(t["shape"], dtype=np.int64))
    return {
        "gguf_version": header["version"],
        "architecture": arch,
        "name": meta.get("general.name"),
        "size_label": meta.get("general.size_label"),
        "file_type": meta.get("general.file_type"),
        "quant_type": llama_ftype_name(meta.get("general.file_type")),
        "dominant_tensor_type": weight_types.most_common(1)[0][0] if weight_types else None,
        "context_length": meta.get(f"{arch}.context_length"),
        "embedding_length": meta.get(f"{arch}.embedding_length"),
        "block_count": meta.get(f"{arch}.block_count"),
        "feed_forward_length": meta.get(f"{arch}.feed_forward_length"),
        "head_count": meta.get(f"{arch}.attention.head_count"),
        "head_count_kv": meta.get(f"{arch}.attention.head_count_kv"),
        "vocab_size": _array_length(meta.get("tokenizer.ggml.tokens")),
        "tokenizer_model": meta.get("tokenizer.ggml.model"),
        "has_chat_template": template is not None,
        "chat_template_head": template[:200] if template is not None else None,
        "tensor_count": len(tensors),
        "tensor_types": dict(tensor_types.most_common()),
        "parameters": sum(int(np.prod(t["shape"], dtype=np.int64)) for t in tensors),
        "metadata": meta,
    }


def _array_length(value) -> int | None:
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict) and "length" in value:
        return value["length"]
    return None


# ---------------------------------------------------------------------------
# CTranslate2
# ---------------------------------------------------------------------------

CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
"""CTranslate2 dtype ids, in the order of ``_dtype_to_type_id``."""

CT2_SCALAR_FORMATS = {"int8": "b", "int16": "h", "int32": "i", "float32": "f"}
WHISPER_CONFIG_KEYS = {"alignment_heads", "suppress_ids", "lang_ids"}
WHISPER_MULTILINGUAL_VOCAB = 51865
CT2_VOCABULARY_FILES = (
    "vocabulary.json",
    "vocabulary.txt",
    "shared_vocabulary.json",
    "shared_vocabulary.txt",
    "target_vocabulary.json",
    "target_vocabulary.txt",
)


def inspect_ctranslate2(folder: str | Path) -> ModelInfo:
    folder = _existing(folder)
    model_bin = folder / "model.bin"
    if not model_bin.is_file():
        raise ModelError(f"{folder}: folder without model.bin (not a CTranslate2 model)")
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    header = read_ct2_header(model_bin)
    config = _read_json(folder / "config.json") if "config.json" in files else {}
    details = {
        "spec": header["spec"],
        "spec_revision": header["revision"],
        "binary_version": header["version"],
        "model_type": _ct2_model_type(header["spec"], config),
        "config": _summarise_config(config),
        "files": files,
        "vocabulary_size": _vocabulary_size(folder),
    }
    details.update(_ct2_architecture(header))
    if details["model_type"] == "whisper":
        details.update(_whisper_facts(folder, config, details))
    return ModelInfo(str(folder), "ctranslate2", sum(files.values()), details)


def read_ct2_header(model_bin: str | Path) -> dict:
    """Spec name, revision and variables (name, shape, dtype, bytes) of a
    CTranslate2 ``model.bin``; tensor data is skipped, rank-0 values are read."""
    model_bin = Path(model_bin)
    size = model_bin.stat().st_size
    with open(model_bin, "rb") as f:
        try:
            return _read_ct2_header(f, size, model_bin)
        except struct.error as exc:
            raise ModelError(f"{model_bin}: truncated CTranslate2 header: {exc}") from exc


def _read_ct2_header(f, size: int, path: Path) -> dict:
    version = _ct2_read(f, "I")
    if not 4 <= version <= 6:
        raise ModelError(f"{path}: unsupported CTranslate2 binary version {version} (4-6 supported)")
    spec, revision, count = _ct2_string(f), _ct2_read(f, "I"), _ct2_read(f, "I")
    variables = [_ct2_variable(f, size, path) for _ in range(count)]
    aliases = {}
    for _ in range(_ct2_read(f, "I")):
        alias = _ct2_string(f)
        aliases[alias] = _ct2_string(f)
    return {
        "version": version,
        "spec": spec,
        "revision": revision,
        "variables": variables,
        "aliases": aliases,
    }


def _ct2_read(f, fmt: str):
    data = f.read(struct.calcsize("<" + fmt))
    values = struct.unpack("<" + fmt, data)
    return values if len(values) > 1 else values[0]


def _ct2_string(f) -> str:
    n = _ct2_read(f, "H")
    data = f.read(n)
    if len(data) != n:
        raise struct.error("string past the end of the file")
    return data.rstrip(b"\0").decode("utf-8", "replace")


def _ct2_variable(f, size: int, path: Path) -> dict:
    name = _ct2_string(f)
    rank = _ct2_read(f, "B")
    shape = [_ct2_read(f, "I") for _ in range(rank)]
    type_id, n_bytes = _ct2_read(f, "BI")
    dtype = CT2_DTYPES[type_id] if type_id < len(CT2_DTYPES) else f"type{type_id}"
    variable = {"name": name, "shape": shape, "dtype": dtype, "bytes": n_bytes}
    if rank == 0 and dtype in CT2_SCALAR_FORMATS and n_bytes <= 8:
        variable["value"] = _ct2_read(f, CT2_SCALAR_FORMATS[dtype])
    elif f.seek(n_bytes, 1) > size:
        raise ModelError(f"{path}: truncated: variable {name} ends past the end of the file")
    return variable


def _ct2_architecture(header: dict) -> dict:
    variables = {v["name"]: v for v in header["variables"]}
    weights = Counter()
    for v in header["variables"]:
        if len(v["shape"]) >= 2:
            weights[v["dtype"]] += v["bytes"]
    return {
        "n_variables": len(variables),
        "n_aliases": len(header["aliases"]),
        "variable_dtypes": dict(Counter(v["dtype"] for v in variables.values()).most_common()),
        "weight_dtype": weights.most_common(1)[0][0] if weights else None,
        "parameters": sum(int(np.prod(v["shape"], dtype=np.int64)) for v in variables.values()),
        "d_model": _ct2_d_model(variables),
        "encoder_layers": _count_layers(variables, "encoder"),
        "decoder_layers": _count_layers(variables, "decoder"),
        "encoder_heads": variables.get("encoder/num_heads", {}).get("value"),
        "decoder_heads": variables.get("decoder/num_heads", {}).get("value"),
        "embedding_rows": _first_dim(variables, "decoder/embeddings/weight", "encoder/embeddings/weight"),
        "max_target_positions": _first_dim(variables, "decoder/position_encodings/encodings"),
        "max_source_positions": _first_dim(variables, "encoder/position_encodings/encodings"),
        "input_channels": _input_channels(variables),
    }


def _ct2_d_model(variables: dict) -> int | None:
    for name in ("encoder/layer_norm/gamma", "decoder/layer_norm/gamma"):
        if name in variables:
            return variables[name]["shape"][0]
    for name in ("encoder/embeddings/weight", "decoder/embeddings/weight"):
        if name in variables and len(variables[name]["shape"]) == 2:
            return variables[name]["shape"][1]
    return None


def _input_channels(variables: dict) -> int | None:
    """Channels of the first encoder convolution: the mel bins for Whisper."""
    conv = variables.get("encoder/conv1/weight")
    return conv["shape"][1] if conv and len(conv["shape"]) == 3 else None


def _count_layers(variables: dict, prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return len({m.group(1) for name in variables if (m := pattern.match(name))})


def _first_dim(variables: dict, *names: str) -> int | None:
    for name in names:
        if name in variables and variables[name]["shape"]:
            return variables[name]["shape"][0]
    return None


def _ct2_model_type(spec: str, config: dict) -> str:
    if spec == "WhisperSpec" or WHISPER_CONFIG_KEYS <= set(config):
        return "whisper"
    return re.sub(r"(Model)?Spec$", "", spec).lower() or "unknown"


def _summarise_config(config: dict) -> dict:
    """Scalars as they are, lists and dicts as their length."""
    summary = {}
    for key, value in config.items():
        if isinstance(value, (list, dict)) and len(value) > 8:
            summary[key] = f"<{type(value).__name__} of {len(value)}>"
        else:
            summary[key] = value
    return summary


def _whisper_facts(folder: Path, config: dict, details: dict) -> dict:
    vocab = details["vocabulary_size"] or details["embedding_rows"] or 0
    multilingual = vocab >= WHISPER_MULTILINGUAL_VOCAB
    preprocessor = _read_json(folder / "preprocessor_config.json")
    return {
        "multilingual": multilingual,
        "languages": len(config.get("lang_ids", [])) if multilingual else 1,
        "language": "multilingual" if multilingual else "en",
        "n_mels": preprocessor.get("feature_size", details["input_channels"]),
        "sample_rate": preprocessor.get("sampling_rate", SAMPLE_RATE),
    }


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable JSON: {exc}") from exc


def _vocabulary_size(folder: Path) -> int | None:
    for name in CT2_VOCABULARY_FILES:
        path = folder / name
        if path.is_file():
            if name.endswith(".json"):
                return len(_read_json(path))
            with open(path, "rb") as f:
                return sum(1 for _ in f)
    tokenizer = _read_json(folder / "tokenizer.json")
    vocab = tokenizer.get("model", {}).get("vocab")
    if vocab is None:
        return None
    added = {t["content"] for t in tokenizer.get("added_tokens", [])} - set(vocab)
    return len(vocab) + len(added)


# ---------------------------------------------------------------------------
# Inventory
# ---------------------------------------------------------------------------

INVENTORY_COLUMNS = [
    "name", "format", "bytes", "parameters", "quantized", "quant_type", "arch",
    "producer", "n_inputs", "n_outputs", "opset", "hidden_size", "layers", "ctx",
    "vocab_size", "sample_rate", "language", "path",
]  # fmt: skip


def inventory_frame(infos: Iterable[ModelInfo] | dict[str, ModelInfo]) -> pd.DataFrame:
    """One row per model with the common fields flattened. A dict's keys
    become the ``name`` column; otherwise the file or folder name does."""
    items = infos.items() if isinstance(infos, dict) else ((i.name, i) for i in infos)
    rows = [{"name": name, **_inventory_row(info)} for name, info in items]
    return pd.DataFrame(rows, columns=INVENTORY_COLUMNS)


def _inventory_row(info: ModelInfo) -> dict:
    d = info.details
    row = {"format": info.format, "bytes": info.bytes, "path": info.path, "parameters": d.get("parameters")}
    if info.format == "onnx":
        sidecar = d.get("sidecar") or {}
        row.update(
            quantized=d["quantized"],
            quant_type=d["weight_dtype"],
            producer=d["producer"],
            n_inputs=len(d["inputs"]),
            n_outputs=len(d["outputs"]),
            opset=d["opsets"].get("ai.onnx"),
            sample_rate=sidecar.get("sample_rate"),
            language=sidecar.get("language"),
        )
    elif info.format == "gguf":
        unquantized = d["quant_type"] in GGUF_UNQUANTIZED or d["dominant_tensor_type"] in GGUF_UNQUANTIZED
        row.update(
            quantized=not unquantized,
            quant_type=d["quant_type"] or d["dominant_tensor_type"],
            arch=d["architecture"],
            hidden_size=d["embedding_length"],
            layers=d["block_count"],
            ctx=d["context_length"],
            vocab_size=d["vocab_size"],
        )
    elif info.format == "ctranslate2":
        row.update(
            quantized=d["weight_dtype"] in ("int8", "int16"),
            quant_type=d["weight_dtype"],
            arch=d["model_type"],
            hidden_size=d["d_model"],
            layers=d["encoder_layers"] or d["decoder_layers"],
            ctx=d["max_target_positions"],
            vocab_size=d["vocabulary_size"],
            sample_rate=d.get("sample_rate"),
            language=d.get("language"),
        )
    return row


# ---------------------------------------------------------------------------
# Stage-to-stage compatibility
# ---------------------------------------------------------------------------

COMPATIBILITY_COLUMNS = [
    "check", "link", "fact", "producer_value", "consumer_value",
    "producer_source", "consumer_source", "status", "ok", "message",
]  # fmt: skip
WILDCARD_LANGUAGES = {"multilingual", "multi", "*", "any"}


def model_facts(info: ModelInfo | None) -> dict[str, dict]:
    """Comparable facts of an inspected model: ``{"expects": {...}, "produces": {...}}``.

    ONNX: ``input:<name>`` shapes (expects), ``output:<name>`` shapes
    (produces); a Piper voice config adds ``sample_rate`` (produces) and
    ``language`` (expects). Whisper (CTranslate2): ``sample_rate``, ``n_mels``
    (expects), ``hidden_size`` (both) and ``language`` (both, ``en`` or
    ``multilingual``). GGUF: ``hidden_size`` and ``vocab_size`` (both),
    ``context_length`` (expects)."""
    if info is None:
        return {"expects": {}, "produces": {}}
    d = info.details
    if info.format == "onnx":
        return _onnx_facts(d)
    if info.format == "gguf":
        shared = {"hidden_size": d["embedding_length"], "vocab_size": d["vocab_size"]}
        return {"expects": {**shared, "context_length": d["context_length"]}, "produces": shared}
    if info.format == "ctranslate2":
        return _ct2_facts(d)
    return {"expects": {}, "produces": {}}


def _onnx_facts(details: dict) -> dict:
    expects = {f"input:{v['name']}": v["shape"] for v in details["inputs"]}
    produces = {f"output:{v['name']}": v["shape"] for v in details["outputs"]}
    sidecar = details.get("sidecar") or {}
    if sidecar.get("sample_rate"):
        produces["sample_rate"] = sidecar["sample_rate"]
    if sidecar.get("language"):
        expects["language"] = sidecar["language"]
    return {"expects": expects, "produces": produces}


def _ct2_facts(details: dict) -> dict:
    shared = {"hidden_size": details.get("d_model")}
    if details.get("language"):
        shared["language"] = details["language"]
    expects = dict(shared)
    for fact in ("sample_rate", "n_mels"):
        if details.get(fact) is not None:
            expects[fact] = details[fact]
    return {"expects": expects, "produces": shared}


def check_compatibility(stack: dict, infos: dict[str, ModelInfo] | None = None) -> pd.DataFrame:
    """One row per checked fact: stage declarations vs their models, then every
    link's producer vs consumer. See the module docstring for the scheme."""
    infos = infos or {}
    stages = _stages(stack)
    links = _links(stack, stages)
    rows = []
    for name, stage in stages.items():
        rows += _stage_rows(name, stage, _model_info(name, stage, infos))
    for producer, consumer in links:
        rows += _link_rows(producer, consumer, stages, infos)
    return pd.DataFrame(rows, columns=COMPATIBILITY_COLUMNS)


def _stages(stack: dict) -> dict[str, dict]:
    if not isinstance(stack, dict):
        raise ConfigError(f"stack must be a mapping of stages, got {type(stack).__name__}")
    if "stages" in stack:
        stages = stack["stages"] or {}
    else:
        stages = {k: v for k, v in stack.items() if k != "links"}
    if not isinstance(stages, dict):
        raise ConfigError(f"stages must be a mapping of stage name to stage, got {stages!r}")
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            raise ConfigError(f"stage {name!r} must be a mapping, got {stage!r}")
    return {name: _parsed_stage(name, stage) for name, stage in stages.items()}


def _parsed_stage(name: str, stage: dict) -> dict:
    expects = parse_facts(stage.get("expects"), f"{name}.expects")
    produces = parse_facts(stage.get("produces"), f"{name}.produces")
    has = parse_facts(stage.get("has"), f"{name}.has")
    return {**stage, "expects": expects, "produces": produces, "has": has}


def _links(stack: dict, stages: dict) -> list[tuple[str, str]]:
    names = list(stages)
    links = stack.get("links")
    if links is None:
        return list(zip(names, names[1:]))
    result = []
    for link in links:
        if not isinstance(link, (list, tuple)) or len(link) != 2 or any(end not in stages for end in link):
            raise ConfigError(f"link {link!r} must name two of the stages {names}")
        result.append((link[0], link[1]))
    return result


def parse_facts(raw, where: str = "facts") -> dict:
    """A facts mapping from a mapping, or from strings like ``"sample_rate=16000"``
    and ``"input:mel[1,80,3000]"``."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    if isinstance(raw, (list, tuple)):
        return dict(_parse_fact_string(item, where) for item in raw)
    raise ConfigError(f"{where} must be a mapping or a list of strings, got {raw!r}")


def _parse_fact_string(item, where: str) -> tuple[str, Any]:
    if not isinstance(item, str):
        raise ConfigError(f"{where}: a fact must be a string, got {item!r}")
    shape = re.fullmatch(r"\s*((?:input|output):[^\[]+)(\[.*\])\s*", item)
    if shape:
        return shape.group(1).strip(), as_shape(shape.group(2))
    if "=" not in item:
        raise ConfigError(f"{where}: cannot read fact {item!r}; use 'name=value' or 'input:name[dims]'")
    name, value = item.split("=", 1)
    return name.strip(), yaml.safe_load(value)


def as_shape(value) -> list | None:
    """A shape as a list of ints and dynamic markers, from a list or ``"[1,?,80]"``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
    return [_as_dim(v) for v in value]


def _as_dim(value):
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _model_info(name: str, stage: dict, infos: dict) -> ModelInfo | None:
    return infos.get(stage.get("model")) or infos.get(name)


@dataclass
class _Side:
    """One side of a comparison: who says it, the value (None: not stated), its source."""

    says: str
    value: Any
    source: str | None

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.says} nothing"
        return f"{self.says} {self.value!r}" + (f" ({self.source})" if self.source else "")


def _stage_rows(name: str, stage: dict, info: ModelInfo | None) -> list[dict]:
    facts = model_facts(info)
    facts["has"] = {**facts["expects"], **facts["produces"]}
    model = f"model {stage.get('model') or name}"
    rows = []
    for side in ("expects", "produces", "has"):
        for fact, declared in stage[side].items():
            inspected = facts[side].get(fact)
            if inspected is not None:
                declared_side = _Side(f"{name} declares it {side}", declared, "declared")
                model_side = _Side(f"{model} has", inspected, "model")
                rows.append(_row("stage", name, fact, declared_side, model_side))
    return rows


def _link_rows(producer: str, consumer: str, stages: dict, infos: dict) -> list[dict]:
    p_stage, c_stage = stages[producer], stages[consumer]
    p_model = model_facts(_model_info(producer, p_stage, infos))["produces"]
    c_model = model_facts(_model_info(consumer, c_stage, infos))["expects"]
    rows = []
    for fact in dict.fromkeys([*p_stage["produces"], *c_stage["expects"]]):
        p_side = _Side(f"{producer} produces", *_resolve(fact, p_stage["produces"], p_model))
        c_side = _Side(f"{consumer} expects", *_resolve(fact, c_stage["expects"], c_model))
        rows.append(_row("link", f"{producer}->{consumer}", fact, p_side, c_side))
    return rows


def _resolve(fact: str, declared: dict, inspected: dict) -> tuple[Any, str | None]:
    if fact in declared:
        return declared[fact], "declared"
    if inspected.get(fact) is not None:
        return inspected[fact], "model"
    return None, None


def _row(check: str, link: str, fact: str, producer: _Side, consumer: _Side) -> dict:
    if producer.value is None or consumer.value is None:
        status = "unverified"
    elif facts_match(fact, producer.value, consumer.value):
        status = "ok"
    else:
        status = "mismatch"
    return {
        "check": check, "link": link, "fact": fact,
        "producer_value": producer.value, "consumer_value": consumer.value,
        "producer_source": producer.source, "consumer_source": consumer.source,
        "status": status, "ok": status != "mismatch",
        "message": f"{link} {fact}: {producer}, {consumer} -> {status}",
    }  # fmt: skip


def facts_match(fact: str, a, b) -> bool:
    """Whether two values of ``fact`` agree (shapes with dynamic dims,
    languages on their primary subtag, numbers numerically)."""
    if fact.startswith(("input:", "output:")) or isinstance(a, list) or isinstance(b, list):
        return _shapes_match(as_shape(a), as_shape(b))
    if fact == "language":
        return _languages_match(str(a), str(b))
    if _is_number(a) and _is_number(b):
        return float(a) == float(b)
    return str(a).strip().lower() == str(b).strip().lower()


def _shapes_match(a: list | None, b: list | None) -> bool:
    if a is None or b is None or len(a) != len(b):
        return False
    return all(not _is_static(x) or not _is_static(y) or x == y for x, y in zip(a, b))


def _is_static(dim) -> bool:
    return isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim >= 0


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _languages_match(a: str, b: str) -> bool:
    a, b = a.strip().lower(), b.strip().lower()
    if a in WILDCARD_LANGUAGES or b in WILDCARD_LANGUAGES:
        return True
    return re.split(r"[-_]", a)[0] == re.split(r"[-_]", b)[0]
