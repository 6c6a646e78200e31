"""The header of a GGUF file (llama.cpp's format): metadata and tensor infos, no weights.

Decisions
---------
- GGUF metadata is read by hand with ``struct`` over a read-only ``mmap``: the
  ``gguf`` package is not installed and llama-cpp-python would load the whole
  model. The format (github.com/ggml-org/ggml/blob/master/docs/gguf.md) is
  simple: magic ``GGUF``, uint32 version, uint64 tensor count, uint64 kv
  count, then typed key/values, then tensor infos (name, dims, ggml type,
  offset). Versions 2 and 3 are supported, in either byte order.
- Arrays longer than ``GGUF_ARRAY_KEEP`` items (the tokenizer vocabulary,
  scores) are skipped without being materialised and summarised as
  ``{"array": item_type, "length": n}``; string arrays still need one length
  read per item.
- ``general.file_type`` is mapped to a name with llama.cpp's ``llama_ftype``
  table (``LLAMA_FTYPE_NAMES``). The dominant tensor type (the ggml type
  holding most weight elements) is reported as well because the file type can
  be absent or "guessed", and a "Q4_K_M" file mixes several tensor types.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from pathlib import Path

import numpy as np

from saraikit.core.errors import ModelError

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


def describe_gguf(path: Path) -> tuple[int, dict]:
    """Size on disk and the details of the GGUF file at ``path``."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{path}: bad GGUF magic (the file does not start with b'GGUF')")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            try:
                header = read_gguf_header(buffer, path)
            except struct.error as exc:
                raise ModelError(f"{path}: truncated GGUF header: {exc}") from exc
    return size, _gguf_details(header)


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
