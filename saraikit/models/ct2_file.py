"""CTranslate2 models: THE one reader of ``model.bin``, and what a model folder holds.

Decisions
---------
- ``model.bin`` is parsed as its writer (``ctranslate2/specs/model_spec.py``,
  ``_serialize``) lays it out: uint32 binary version, spec name, uint32 spec
  revision, uint32 variable count, then per variable: name, uint8 rank, uint32
  dims, uint8 dtype id, uint32 byte count and the data, then aliases (alias
  name, target name). Strings are a uint16 length (counting a trailing NUL)
  and the bytes. Binary versions 4 to 6 are supported (older ones stored an
  item size instead of a dtype id).
- One parser serves both uses: ``read_ct2_header`` (every variable's name,
  shape, dtype and byte count, for inspection) and ``read_ct2_variables`` (the
  arrays of the variables under a name prefix, for the Whisper ONNX export).
  Data nobody asked for is skipped with ``seek``. Rank-0 variables
  (``num_heads``, ``activation``, ...) are small settings: their values are
  always read, into the header's ``value``.
- Arrays keep their stored dtype (float16 stays float16) except bfloat16,
  which numpy lacks: it is widened to float32 by a bit shift. Weights of a
  model converted with ``--quantization int8`` / ``int16`` come with a
  ``<name>_scale``; ``float_weight`` divides it out. Zero-point (AWQ) weights
  are refused. CTranslate2 stores booleans as int8 settings.
- Aliases (a duplicated weight stored once) are resolved: an alias under the
  prefix gets its target's array, read in a second pass when the target lies
  outside the prefix.
- A missing, truncated or corrupt file is a ``ModelError`` naming the path.
- Folder facts: ``weight_dtype`` is the dtype holding most bytes among
  variables of rank >= 2. Whisper is recognised from the spec name or from the
  config keys (``alignment_heads``, ``suppress_ids``, ``lang_ids``). It is
  multilingual when its vocabulary has at least 51865 tokens (the rule
  CTranslate2 itself applies); English-only checkpoints still list language
  ids in their config. Its sample rate comes from ``preprocessor_config.json``
  when present, otherwise it is the Whisper family's fixed 16000 Hz.
- ``details`` holds only plain JSON-serialisable values.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from saraikit.core.errors import ModelError
from saraikit.data.audio import SAMPLE_RATE

CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
"""CTranslate2 dtype ids, in the order of ``_dtype_to_type_id``."""

CT2_NUMPY = {"float32": np.float32, "int8": np.int8, "int16": np.int16, "int32": np.int32,
             "float16": np.float16, "bfloat16": np.uint16}  # bfloat16: raw bits, widened after reading
CT2_SETTING_DTYPES = ("int8", "int16", "int32", "float32")
CT2_SETTING_MAX_BYTES = 8
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


# ---------------------------------------------------------------------------
# model.bin
# ---------------------------------------------------------------------------


@dataclass
class Ct2Variables:
    """The spec name and the requested variables of a CTranslate2 ``model.bin``."""

    path: Path
    spec: str
    arrays: dict[str, np.ndarray]


def read_ct2_header(model_bin: str | Path) -> dict:
    """Version, spec name, revision, variables (name, shape, dtype, bytes and,
    for rank-0 settings, value) and aliases of a CTranslate2 ``model.bin``;
    tensor data is skipped."""
    header, _ = _read_model_bin(Path(model_bin), lambda name: False)
    return header


def read_ct2_variables(model_bin: str | Path, prefix: str = "") -> Ct2Variables:
    """Variables whose name starts with ``prefix``, as numpy arrays; the others are skipped with seek."""
    path = Path(model_bin)
    header, arrays = _read_model_bin(path, lambda name: name.startswith(prefix))
    for alias, target in header["aliases"].items():
        if alias.startswith(prefix):  # a duplicated weight stored once under another name
            arrays[alias] = arrays[target] if target in arrays else _read_one(path, target)
    return Ct2Variables(path, header["spec"], arrays)


def _read_one(path: Path, name: str) -> np.ndarray:
    _, arrays = _read_model_bin(path, lambda candidate: candidate == name)
    if name not in arrays:
        raise ModelError(f"{path}: an alias points to {name}, which the file does not hold")
    return arrays[name]


class _Reader:
    """Little-endian reads from an open file that refuse to run past its end."""

    def __init__(self, f, size: int) -> None:
        self.f, self.size = f, size

    def bytes(self, n: int) -> bytes:
        raw = self.f.read(n)
        if len(raw) != n:
            raise ValueError(f"needed {n} bytes at offset {self.f.tell() - len(raw)}, the file ends first")
        return raw

    def read(self, fmt: str):
        values = struct.unpack("<" + fmt, self.bytes(struct.calcsize("<" + fmt)))
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        return self.bytes(self.read("H")).rstrip(b"\0").decode("utf-8", "replace")

    def skip(self, n: int, what: str) -> None:
        if self.f.seek(n, os.SEEK_CUR) > self.size:
            raise ValueError(f"{what} ends past the end of the file ({self.size} bytes)")


def _read_model_bin(path: Path, wanted: Callable[[str], bool]) -> tuple[dict, dict[str, np.ndarray]]:
    """The header, and the arrays of the variables ``wanted`` accepts."""
    if not path.is_file():
        raise ModelError(f"{path}: no such file (a CTranslate2 model folder holds model.bin)")
    with open(path, "rb") as f:
        try:
            return _parse_model_bin(_Reader(f, path.stat().st_size), wanted, path)
        except (struct.error, ValueError) as error:
            raise ModelError(f"{path}: truncated or corrupt CTranslate2 model.bin ({error})") from error


def _parse_model_bin(reader: _Reader, wanted: Callable[[str], bool], path: Path) -> tuple[dict, dict]:
    version = reader.read("I")
    if not 4 <= version <= 6:
        raise ModelError(f"{path}: unsupported CTranslate2 binary version {version} (4-6 supported)")
    spec, revision, count = reader.string(), reader.read("I"), reader.read("I")
    variables, arrays = [], {}
    for _ in range(count):
        variable, array = _read_variable(reader, wanted)
        variables.append(variable)
        if array is not None:
            arrays[variable["name"]] = array
    aliases = {}
    for _ in range(reader.read("I")):
        alias = reader.string()
        aliases[alias] = reader.string()
    header = {"version": version, "spec": spec, "revision": revision, "variables": variables, "aliases": aliases}
    return header, arrays


def _read_variable(reader: _Reader, wanted: Callable[[str], bool]) -> tuple[dict, np.ndarray | None]:
    """The variable's header record, and its array when ``wanted``."""
    name = reader.string()
    shape = [reader.read("I") for _ in range(reader.read("B"))]
    type_id, n_bytes = reader.read("BI")
    dtype = CT2_DTYPES[type_id] if type_id < len(CT2_DTYPES) else f"type{type_id}"
    variable = {"name": name, "shape": shape, "dtype": dtype, "bytes": n_bytes}
    is_setting = not shape and dtype in CT2_SETTING_DTYPES and n_bytes <= CT2_SETTING_MAX_BYTES
    if not (is_setting or wanted(name)):
        reader.skip(n_bytes, f"variable {name}")
        return variable, None
    array = _as_array(reader.bytes(n_bytes), dtype, shape, name)
    if is_setting:
        variable["value"] = array.item()
    return variable, array if wanted(name) else None


def _as_array(raw: bytes, dtype: str, shape: list[int], name: str) -> np.ndarray:
    if dtype not in CT2_NUMPY:
        raise ValueError(f"variable {name} has an unknown dtype ({dtype})")
    array = np.frombuffer(bytearray(raw), CT2_NUMPY[dtype]).reshape(shape)
    return _widen_bfloat16(array) if dtype == "bfloat16" else array


def _widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float_weight(arrays: dict[str, np.ndarray], name: str, where: Path) -> np.ndarray:
    """``name`` as float32, dequantized when CTranslate2 stored it as int8/int16."""
    value = arrays[name]
    if f"{name}_zero" in arrays:
        raise ModelError(f"{where}: {name} uses zero-point (AWQ) quantization, which is not supported")
    scale = arrays.get(f"{name}_scale")
    value = value.astype(np.float32)
    if scale is not None:
        scale = scale.astype(np.float32)
        value = value / (scale.reshape((-1,) + (1,) * (value.ndim - 1)) if scale.ndim else scale)
    return value


# ---------------------------------------------------------------------------
# The model folder
# ---------------------------------------------------------------------------


def describe_ctranslate2(folder: Path) -> tuple[int, dict]:
    """Size on disk (all files of the folder) and the details of a CTranslate2 model folder."""
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
    return sum(files.values()), details


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
