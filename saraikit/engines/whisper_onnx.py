"""Whisper's encoder as an FP32 ONNX graph built from CTranslate2 weights, and an
STT backend that runs that encoder in ONNX Runtime and CTranslate2's decoder.

Why: the encoder is most of Whisper's CPU time on short utterances, and ONNX
Runtime gives it knobs (threads, graph optimisation, INT8 quantization with
``onnxruntime.quantization``) that CTranslate2 does not. Building the graph
from the weights the project already ships avoids torch and any model hub.

Decisions
---------
- ``model.bin`` is read here, not by ``saraikit.inspect`` (which skips tensor
  data): the layout is CTranslate2's ``ModelSpec._serialize`` (uint32 binary
  version, spec name, revision, then per variable name / rank / uint32 dims /
  uint8 dtype id / uint32 byte count / data, then aliases). Only the variables
  asked for are read; the others are skipped with ``seek``. Aliases (a
  duplicated weight stored once) are resolved.
- In the provisioned models every tensor is float16 (converted exactly to
  float32). The int8 / int16 variables are rank-0 settings, not weights:
  ``*/num_heads`` (int16), ``decoder/activation``, ``decoder/pre_norm`` and
  other flags (int8, CTranslate2 stores booleans as int8). Weights of a model
  converted with ``--quantization int8`` / ``int16`` come with a
  ``weight_scale`` and are dequantized (``q / scale``); bfloat16 is widened by
  a bit shift.
- The graph is what CTranslate2's ``WhisperEncoder`` computes: Conv(k=3, pad
  1) + GELU, Conv(k=3, stride 2, pad 1) + GELU, transpose to [batch, time,
  d_model], plus the stored position encodings, N pre-LN layers (x + MHA(LN(x)),
  x + FFN(LN(x))), final LayerNorm (epsilon 1e-5, as CTranslate2 and Whisper).
  CTranslate2 fuses q/k/v into one ``linear_0``; it is split back into three
  MatMuls so each projection is a plain (quantizable) MatMul with a readable
  name. Whisper's key projection has no bias (CTranslate2 stores zeros there):
  a zero bias is left out. The 1/sqrt(head_dim) query scale is folded into the
  query weights and bias (one Mul less per layer; mathematically the same).
- Weights are stored [in, out] so activations multiply them as MatMul(x, W);
  every weight is an FP32 initializer; the file is one protobuf (base is
  ~80 MB, far from the 2 GB limit).
- GELU is the exact erf form, x * 0.5 * (1 + erf(x / sqrt(2))), at opset 17.
  ONNX Runtime 1.31 at graph_optimization_level EXTENDED / ALL rewrites it to
  its own kernels (com.microsoft Gelu after the convs, BiasGelu in the FFNs),
  exactly what it does with the opset-20 ``Gelu`` op, so both run alike:
  whisper-base, [1, 80, 3000], fastest of 8 runs on the 2-core box (other
  jobs running): ALL 275 ms (erf) vs 271 ms (Gelu op); BASIC, where nothing
  is fused, 287 vs 272 ms. Opset 17 keeps the graph usable by older tools;
  ``opset >= 20`` switches to the ``Gelu`` op. ORT fuses no Attention here
  (standard ops only), so attention stays MatMul / Softmax / MatMul.
- Batch and frames are dynamic (``mel`` is [batch, n_mels, frames]); the
  position encodings are sliced to the conv output length, so any frames <=
  3000 runs (CTranslate2's own encoder accepts shorter inputs the same way).
  Whisper was trained on 3000 frames (30 s), which is what the backend
  feeds, as faster-whisper does.
- Features follow faster-whisper exactly: ``FeatureExtractor`` (pure numpy)
  on the audio, the last frame dropped, then zero-padded (in log-mel space) to
  3000 frames per 30 s window (``faster_whisper.audio.pad_or_trim``). Audio
  longer than 30 s is cut into consecutive 30 s windows whose texts are
  joined; there is no timestamp-based seeking, so a word split by a window
  edge can be lost. Voice-assistant turns are short; the datasets' longest
  clips (Asterisk prompts up to ~86 s) still transcribe.
- The backend's decoder is CTranslate2's own ``Whisper.generate``, which
  treats a [batch, 1500, d_model] float StorageView as encoder output. The
  prompt is ``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>``
  (English-only models: ``<|startoftranscript|><|notimestamps|>``); with
  ``language=None`` a multilingual model detects the language on the first
  window with ``Whisper.detect_language`` (as faster-whisper does). Sampling options are faster-whisper's
  defaults at temperature 0 (no temperature fallback), so the same audio gives
  the same text as ``WhisperModel.transcribe(..., without_timestamps=True)``.
- Any encoder file with the input ``mel`` and the output ``encoder_output``
  works (the INT8 variant is just another path).
- ``default_export`` writes ``models/<model>-encoder-onnx/<model>-encoder.onnx`` (the
  inventory lists every .onnx under models/) and a sidecar ``<model>-encoder.json``; the file name carries the model so the inventory lists it under a distinct name;
  it re-exports only when the ONNX file or sidecar is missing or older than
  ``model.bin``. Files are written to a temporary name in the same folder,
  checked with ``onnx.checker``, then renamed.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.data.audio import SAMPLE_RATE
from saraikit.models.inspect import CT2_DTYPES, read_ct2_header

INPUT_NAME = "mel"
OUTPUT_NAME = "encoder_output"
WINDOW_FRAMES = 3000  # 30 s of 10 ms hops: Whisper's fixed input length
MAX_DECODE_LENGTH = 448  # the decoder's position-encoding rows
LAYER_NORM_EPSILON = 1e-5
MIN_OPSET, GELU_OP_OPSET = 17, 20  # LayerNormalization needs 17, the Gelu op 20

LAYER_PATTERN = re.compile(r"^encoder/layer_(\d+)/")
CT2_NUMPY = {"float32": np.float32, "int8": np.int8, "int16": np.int16, "int32": np.int32,
             "float16": np.float16, "bfloat16": np.uint16}


# ---------------------------------------------------------------------------
# Reading CTranslate2 weights
# ---------------------------------------------------------------------------


@dataclass
class Ct2Variables:
    """The spec name and the requested variables of a CTranslate2 ``model.bin``."""

    path: Path
    spec: str
    arrays: dict[str, np.ndarray]


def read_ct2_variables(model_bin: str | Path, prefix: str = "") -> Ct2Variables:
    """Variables whose name starts with ``prefix``, as numpy arrays; the others are skipped with seek."""
    path = Path(model_bin)
    if not path.is_file():
        raise ModelError(f"{path}: no such file (a CTranslate2 model folder holds model.bin)")
    with open(path, "rb") as f:
        try:
            return _parse_model_bin(_Reader(f, path.stat().st_size), prefix, path)
        except (struct.error, ValueError, IndexError) as error:
            raise ModelError(f"{path}: truncated or corrupt CTranslate2 model.bin ({error})") from error


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
        return self.bytes(self.read("H")).rstrip(b"\0").decode("utf-8")

    def skip(self, n: int) -> None:
        if self.f.seek(n, os.SEEK_CUR) > self.size:
            raise ValueError(f"a variable ends past the end of the file ({self.size} bytes)")


def _parse_model_bin(reader: _Reader, prefix: str, path: Path) -> Ct2Variables:
    version = reader.read("I")
    if not 4 <= version <= 6:
        raise ModelError(f"{path}: unsupported CTranslate2 binary version {version} (4-6 supported)")
    spec, _revision, count = reader.string(), reader.read("I"), reader.read("I")
    arrays = {}
    for _ in range(count):
        name = reader.string()
        shape = [reader.read("I") for _ in range(reader.read("B"))]
        dtype, n_bytes = CT2_DTYPES[reader.read("B")], reader.read("I")
        if not name.startswith(prefix):
            reader.skip(n_bytes)
            continue
        data = np.frombuffer(bytearray(reader.bytes(n_bytes)), CT2_NUMPY[dtype]).reshape(shape)
        arrays[name] = _widen_bfloat16(data) if dtype == "bfloat16" else data
    for _ in range(reader.read("I")):
        alias, target = reader.string(), reader.string()
        if alias.startswith(prefix):  # a duplicated weight stored once under another name
            arrays[alias] = arrays[target] if target in arrays else read_ct2_variables(path, target).arrays[target]
    return Ct2Variables(path, spec, arrays)


def _widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---------------------------------------------------------------------------
# The encoder's weights, as float32
# ---------------------------------------------------------------------------


@dataclass
class EncoderSpec:
    """Sizes of a Whisper encoder, read from its weights."""

    d_model: int
    layers: int
    heads: int
    n_mels: int
    positions: int  # rows of the position encodings: 1500 = 3000 frames / 2

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads


def _float_weight(arrays: dict, name: str, where: Path) -> np.ndarray:
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


def _whisper_model_bin(ct2_dir: str | Path) -> Path:
    folder = Path(ct2_dir)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such CTranslate2 model folder")
    model_bin = folder / "model.bin"
    if not model_bin.is_file():
        raise ModelError(f"{folder}: folder without model.bin (not a CTranslate2 model)")
    return model_bin


def _spec_from(shapes: dict[str, list[int]], heads, model_bin: Path) -> EncoderSpec:
    """Sizes from variable shapes: conv1 is [d_model, n_mels, 3], the encodings [positions, d_model]."""
    conv1 = shapes.get("encoder/conv1/weight")
    encodings = shapes.get("encoder/position_encodings/encodings")
    layers = len({m.group(1) for name in shapes if (m := LAYER_PATTERN.match(name))})
    if heads is None or conv1 is None or len(conv1) != 3 or encodings is None or layers == 0:
        raise ModelError(f"{model_bin}: no Whisper encoder in it (missing encoder/num_heads, encoder/conv1/weight, "
                         "encoder/position_encodings/encodings or encoder/layer_*)")
    spec = EncoderSpec(d_model=int(conv1[0]), layers=layers, heads=int(heads), n_mels=int(conv1[1]),
                       positions=int(encodings[0]))
    if spec.d_model % spec.heads:
        raise ModelError(f"{model_bin}: d_model {spec.d_model} is not a multiple of {spec.heads} heads")
    return spec


def _check_whisper(spec_name: str, model_bin: Path) -> None:
    if spec_name != "WhisperSpec":
        raise ModelError(f"{model_bin}: a CTranslate2 {spec_name!r} model, expected a WhisperSpec (Whisper) model")


def encoder_spec(ct2_dir: str | Path) -> EncoderSpec:
    """The encoder's sizes, from the ``model.bin`` header alone (no weights read)."""
    model_bin = _whisper_model_bin(ct2_dir)
    header = read_ct2_header(model_bin)
    _check_whisper(header["spec"], model_bin)
    shapes = {v["name"]: v["shape"] for v in header["variables"]}
    heads = next((v.get("value") for v in header["variables"] if v["name"] == "encoder/num_heads"), None)
    return _spec_from(shapes, heads, model_bin)


def load_encoder(ct2_dir: str | Path) -> tuple[EncoderSpec, dict[str, np.ndarray]]:
    """The encoder's sizes and its weights (name -> float32 array) from a CTranslate2 Whisper folder."""
    model_bin = _whisper_model_bin(ct2_dir)
    variables = read_ct2_variables(model_bin, "encoder/")
    _check_whisper(variables.spec, model_bin)
    arrays = variables.arrays
    spec = _spec_from({name: list(a.shape) for name, a in arrays.items()}, arrays.get("encoder/num_heads"), model_bin)
    missing = [name for name in _required_weights(spec) if name not in arrays]
    if missing:
        raise ModelError(f"{model_bin}: not a Whisper encoder layout; missing {', '.join(missing[:5])}")
    weights = {name: _float_weight(arrays, name, model_bin) for name in _encoder_weight_names(arrays)}
    return spec, weights


def _required_weights(spec: EncoderSpec) -> list[str]:
    norm = ("gamma", "beta")
    linear = ("weight", "bias")
    names = [f"encoder/conv{i}/{w}" for i in (1, 2) for w in linear]
    names += ["encoder/position_encodings/encodings"] + [f"encoder/layer_norm/{w}" for w in norm]
    for i in range(spec.layers):
        scope = f"encoder/layer_{i}"
        for block in ("self_attention", "ffn"):
            names += [f"{scope}/{block}/layer_norm/{w}" for w in norm]
            names += [f"{scope}/{block}/linear_{j}/{w}" for j in (0, 1) for w in linear]
    return names


def _encoder_weight_names(arrays: dict) -> list[str]:
    return sorted(name for name, value in arrays.items()
                  if value.ndim > 0 and not name.endswith(("_scale", "_zero")))


# ---------------------------------------------------------------------------
# Building the ONNX graph
# ---------------------------------------------------------------------------


@dataclass
class _Graph:
    """Nodes and initializers accumulated while building; names stay readable."""

    use_gelu_op: bool
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray | None, name: str) -> str:
        """x @ weight.T (+ bias): CTranslate2 stores [out, in]; ONNX MatMul wants [in, out]."""
        out = self.op("MatMul", [x, self.const(f"{name}/weight", weight.T)], f"{name}/MatMul")
        if bias is None or not np.any(bias):
            return out
        return self.op("Add", [out, self.const(f"{name}/bias", bias)], f"{name}/Add")

    def layer_norm(self, x: str, weights: dict, scope: str) -> str:
        return self.op("LayerNormalization",
                       [x, self.const(f"{scope}/gamma", weights[f"{scope}/gamma"]),
                        self.const(f"{scope}/beta", weights[f"{scope}/beta"])],
                       f"{scope}/LayerNormalization", axis=-1, epsilon=LAYER_NORM_EPSILON)

    def gelu(self, x: str, name: str) -> str:
        if self.use_gelu_op:
            return self.op("Gelu", [x], f"{name}/Gelu")
        scaled = self.op("Div", [x, self.scalar("sqrt2", math.sqrt(2.0))], f"{name}/Div")
        erf = self.op("Erf", [scaled], f"{name}/Erf")
        one_plus = self.op("Add", [erf, self.scalar("one", 1.0)], f"{name}/Add")
        times_x = self.op("Mul", [x, one_plus], f"{name}/Mul")
        return self.op("Mul", [times_x, self.scalar("half", 0.5)], f"{name}/Mul_half")

    def scalar(self, name: str, value: float) -> str:
        if not any(init.name == name for init in self.initializers):
            self.const(name, np.array(value, dtype=np.float32))
        return name


def _attention(g: _Graph, x: str, weights: dict, spec: EncoderSpec, scope: str) -> str:
    """Multi-head self-attention: softmax(q k^T / sqrt(head_dim)) v, then the output projection."""
    d, h, hd = spec.d_model, spec.heads, spec.head_dim
    w_qkv, b_qkv = weights[f"{scope}/linear_0/weight"], weights[f"{scope}/linear_0/bias"]
    scale = 1.0 / math.sqrt(hd)
    q = g.linear(x, w_qkv[:d] * scale, b_qkv[:d] * scale, f"{scope}/q")
    k = g.linear(x, w_qkv[d:2 * d], b_qkv[d:2 * d], f"{scope}/k")
    v = g.linear(x, w_qkv[2 * d:], b_qkv[2 * d:], f"{scope}/v")
    heads_shape = g.const(f"{scope}/heads_shape", np.array([0, 0, h, hd], dtype=np.int64))
    q = g.op("Transpose", [g.op("Reshape", [q, heads_shape], f"{scope}/q/Reshape")], f"{scope}/q/Transpose",
             perm=[0, 2, 1, 3])  # [batch, heads, time, head_dim]
    k = g.op("Transpose", [g.op("Reshape", [k, heads_shape], f"{scope}/k/Reshape")], f"{scope}/k/Transpose",
             perm=[0, 2, 3, 1])  # [batch, heads, head_dim, time]
    v = g.op("Transpose", [g.op("Reshape", [v, heads_shape], f"{scope}/v/Reshape")], f"{scope}/v/Transpose",
             perm=[0, 2, 1, 3])
    scores = g.op("MatMul", [q, k], f"{scope}/scores")
    probs = g.op("Softmax", [scores], f"{scope}/Softmax", axis=-1)
    context = g.op("MatMul", [probs, v], f"{scope}/context")
    context = g.op("Transpose", [context], f"{scope}/context/Transpose", perm=[0, 2, 1, 3])
    merged_shape = g.const(f"{scope}/merged_shape", np.array([0, 0, d], dtype=np.int64))
    context = g.op("Reshape", [context, merged_shape], f"{scope}/context/Reshape")
    return g.linear(context, weights[f"{scope}/linear_1/weight"], weights[f"{scope}/linear_1/bias"], f"{scope}/out")


def _encoder_layer(g: _Graph, x: str, weights: dict, spec: EncoderSpec, i: int) -> str:
    scope = f"encoder/layer_{i}"
    attn_in = g.layer_norm(x, weights, f"{scope}/self_attention/layer_norm")
    x = g.op("Add", [x, _attention(g, attn_in, weights, spec, f"{scope}/self_attention")], f"{scope}/attention_residual")
    ffn = g.layer_norm(x, weights, f"{scope}/ffn/layer_norm")
    ffn = g.linear(ffn, weights[f"{scope}/ffn/linear_0/weight"], weights[f"{scope}/ffn/linear_0/bias"],
                   f"{scope}/ffn/linear_0")
    ffn = g.gelu(ffn, f"{scope}/ffn/gelu")
    ffn = g.linear(ffn, weights[f"{scope}/ffn/linear_1/weight"], weights[f"{scope}/ffn/linear_1/bias"],
                   f"{scope}/ffn/linear_1")
    return g.op("Add", [x, ffn], f"{scope}/ffn_residual")


def build_encoder_model(spec: EncoderSpec, weights: dict, opset: int = MIN_OPSET) -> onnx.ModelProto:
    """The encoder as an in-memory ONNX model (see the module docstring for the graph)."""
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ConfigError(f"whisper_onnx: opset must be an int >= {MIN_OPSET} (LayerNormalization), got {opset!r}")
    g = _Graph(use_gelu_op=opset >= GELU_OP_OPSET)
    x = INPUT_NAME
    for i, stride in ((1, 1), (2, 2)):
        conv = g.op("Conv", [x, g.const(f"encoder/conv{i}/weight", weights[f"encoder/conv{i}/weight"]),
                             g.const(f"encoder/conv{i}/bias", weights[f"encoder/conv{i}/bias"])],
                    f"encoder/conv{i}/Conv", kernel_shape=[3], pads=[1, 1], strides=[stride])
        x = g.gelu(conv, f"encoder/conv{i}/gelu")
    x = g.op("Transpose", [x], "encoder/Transpose", perm=[0, 2, 1])  # [batch, time, d_model]
    # Position encodings sliced to the time steps present, so frames < 3000 also run.
    time_steps = g.op("Shape", [x], "encoder/time_steps", start=1, end=2)
    positions = g.op("Slice", [g.const("encoder/position_encodings", weights["encoder/position_encodings/encodings"]),
                               g.const("encoder/zero", np.array([0], dtype=np.int64)), time_steps,
                               g.const("encoder/axis0", np.array([0], dtype=np.int64))], "encoder/positions")
    x = g.op("Add", [x, positions], "encoder/add_positions")
    for i in range(spec.layers):
        x = _encoder_layer(g, x, weights, spec, i)
    g.layer_norm(x, weights, "encoder/layer_norm")
    g.nodes.append(helper.make_node("Identity", ["encoder/layer_norm/LayerNormalization"], [OUTPUT_NAME],
                                    name="encoder/output"))
    graph = helper.make_graph(
        g.nodes, "whisper_encoder",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", spec.n_mels, "frames"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", "time", spec.d_model])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="saraikit")
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime 1.20+, the oldest pyproject allows
    return model


def _atomic_write(path: Path, write) -> None:
    """``write(temp_path)`` into the destination folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(temp, 0o644)  # mkstemp makes 0600; the models folder is shared
        write(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def export_encoder(ct2_dir: str | Path, out_path: str | Path, opset: int = MIN_OPSET) -> Path:
    """Write the encoder of the CTranslate2 Whisper folder ``ct2_dir`` as FP32 ONNX to ``out_path``."""
    out_path = Path(out_path)
    spec, weights = load_encoder(ct2_dir)
    model = build_encoder_model(spec, weights, opset)
    helper.set_model_props(model, {"source_model": Path(ct2_dir).resolve().name,
                                   **{k: str(v) for k, v in asdict(spec).items()}})

    def write(temp: Path) -> None:
        onnx.save(model, temp)
        try:
            onnx.checker.check_model(str(temp), full_check=True)
        except onnx.checker.ValidationError as error:
            raise ModelError(f"{out_path}: the built encoder graph is invalid: {error}") from error

    _atomic_write(out_path, write)
    return out_path


def default_export(model_name: str, models_dir: str | Path | None = None) -> Path:
    """``models/<model_name>-encoder-onnx/<model_name>-encoder.onnx`` (+ ``.json`` sidecar), exported only when missing
    or older than the model's ``model.bin``."""
    from saraikit.core import paths
    from saraikit.models import catalog

    root = Path(models_dir) if models_dir is not None else paths.models_dir()
    ct2_dir = catalog.model_path(model_name, root)
    model_bin = ct2_dir / "model.bin"
    if not model_bin.is_file():
        raise ModelError(f"{ct2_dir}: model {model_name!r} is not a CTranslate2 folder with model.bin")
    out_path = root / f"{model_name}-encoder-onnx" / f"{model_name}-encoder.onnx"
    sidecar = out_path.with_suffix(".json")
    source_mtime = model_bin.stat().st_mtime
    if all(p.is_file() and p.stat().st_mtime >= source_mtime for p in (out_path, sidecar)):
        return out_path
    export_encoder(ct2_dir, out_path)
    spec = encoder_spec(ct2_dir)
    info = {"source_model": model_name, "source_sha256": catalog.sha256_file(model_bin),
            "d_model": spec.d_model, "layers": spec.layers, "heads": spec.heads, "n_mels": spec.n_mels,
            "opset": MIN_OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME}
    _atomic_write(sidecar, lambda temp: temp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8"))
    return out_path


# ---------------------------------------------------------------------------
# Features and numerical comparison
# ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _feature_extractor(n_mels: int):
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=n_mels)


def _checked_samples(audio) -> np.ndarray:
    """A 1-D finite float32 array of 16 kHz samples, from an array or a ``saraikit.audio.Audio``."""
    rate = getattr(audio, "sample_rate", SAMPLE_RATE)
    samples = getattr(audio, "samples", audio)
    if rate != SAMPLE_RATE:
        raise DataError(f"Whisper needs {SAMPLE_RATE} Hz audio, got {rate} Hz; read it with target_sr={SAMPLE_RATE}")
    samples = np.asarray(samples)
    if samples.ndim != 1 or samples.size == 0:
        raise DataError(f"expected non-empty mono audio (a 1-D array of samples), got shape {samples.shape}")
    if not np.issubdtype(samples.dtype, np.floating) or not np.all(np.isfinite(samples)):
        raise DataError(f"expected finite float audio samples in [-1, 1], got dtype {samples.dtype} "
                        "or NaN/inf values")
    return samples.astype(np.float32, copy=False)


def feature_frames(audio, n_mels: int = 80) -> np.ndarray:
    """Log-mel features [n_mels, k * 3000] of 16 kHz audio, zero-padded to whole 30 s windows (faster-whisper's way)."""
    samples = _checked_samples(audio)
    features = _feature_extractor(n_mels)(samples)[:, :-1]  # faster-whisper's content frames
    windows = max(1, math.ceil(features.shape[1] / WINDOW_FRAMES))
    padded = np.zeros((n_mels, windows * WINDOW_FRAMES), dtype=np.float32)
    padded[:, :features.shape[1]] = features
    return padded


def _as_batch(features: np.ndarray, n_mels: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim == 2:
        features = features[None]
    if features.ndim != 3 or features.shape[1:] != (n_mels, WINDOW_FRAMES):
        raise DataError(f"Whisper encoder features: expected shape [batch, {n_mels}, {WINDOW_FRAMES}] "
                        f"(or [{n_mels}, {WINDOW_FRAMES}]), got {list(features.shape)}")
    return np.ascontiguousarray(features)


def compare_with_ct2(ct2_dir: str | Path, onnx_path: str | Path, features: np.ndarray,
                     ort_config=None) -> dict:
    """The ONNX encoder's output against CTranslate2's own FP32 encoder on the same features.

    Returns ``cosine`` (flattened), ``max_abs`` (largest absolute difference),
    ``snr_db`` (10 log10 of reference energy over error energy) and
    ``reference_max_abs`` (the scale ``max_abs`` is relative to).
    """
    import ctranslate2

    from saraikit.engines.sessions import build_ort_session

    spec = encoder_spec(ct2_dir)
    batch = _as_batch(features, spec.n_mels)
    whisper = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    reference = np.array(whisper.encode(ctranslate2.StorageView.from_array(batch), to_cpu=True))
    session = build_ort_session(onnx_path, ort_config)
    candidate = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    if candidate.shape != reference.shape:
        raise ModelError(f"{onnx_path}: output shape {list(candidate.shape)} differs from CTranslate2's "
                         f"{list(reference.shape)}")
    return agreement(reference, candidate)


def agreement(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """cosine, max_abs, snr_db and reference_max_abs of ``candidate`` against ``reference``."""
    ref = reference.astype(np.float64).ravel()
    cand = candidate.astype(np.float64).ravel()
    error = cand - ref
    error_energy = float(error @ error)
    return {
        "cosine": float(ref @ cand / (np.linalg.norm(ref) * np.linalg.norm(cand))),
        "max_abs": float(np.max(np.abs(error))),
        "snr_db": float(10 * np.log10(float(ref @ ref) / error_energy)) if error_energy > 0 else math.inf,
        "reference_max_abs": float(np.max(np.abs(ref))),
    }


# ---------------------------------------------------------------------------
# The STT backend: ONNX encoder + CTranslate2 decoder
# ---------------------------------------------------------------------------


@dataclass
class TranscriptResult:
    """One transcription; times are summed over the 30 s windows."""

    text: str
    language: str
    language_probability: float | None  # detection's probability; None when given or English-only
    features_ms: float
    encoder_ms: float
    decoder_ms: float  # language detection + generate
    windows: int
    tokens: list[int]


class OnnxEncoderWhisper:
    """Whisper with its encoder in ONNX Runtime and CTranslate2's decoder.

    ``onnx_path`` is any encoder with input ``mel`` [batch, n_mels, 3000] and
    output ``encoder_output`` [batch, 1500, d_model] (FP32 or INT8 variants).
    """

    def __init__(self, ct2_dir: str | Path, onnx_path: str | Path, ort_config=None, ct2_config=None) -> None:
        import tokenizers

        from saraikit.engines.sessions import build_ct2_whisper, build_ort_session

        self.ct2_dir, self.onnx_path = Path(ct2_dir), Path(onnx_path)
        self.spec = encoder_spec(self.ct2_dir)  # checks the folder holds a Whisper model.bin
        tokenizer_file = self.ct2_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelError(f"{self.ct2_dir}: no tokenizer.json (needed to decode Whisper tokens offline)")
        self.n_mels = self.spec.n_mels
        self.session = build_ort_session(self.onnx_path, ort_config)
        self._check_encoder_io()
        self.whisper = build_ct2_whisper(self.ct2_dir, ct2_config)
        self.multilingual = self.whisper.is_multilingual
        self._tokenizers = tokenizers.Tokenizer.from_file(str(tokenizer_file))

    def _check_encoder_io(self) -> None:
        """The ONNX file must take ``mel`` [batch, n_mels, frames] and give ``encoder_output`` [.., .., d_model]."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelError(f"{self.onnx_path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}; "
                             f"has inputs {sorted(inputs)} and outputs {sorted(outputs)}")
        mel, out = inputs[INPUT_NAME], outputs[OUTPUT_NAME]
        if len(mel) != 3 or (isinstance(mel[1], int) and mel[1] != self.n_mels):
            raise ModelError(f"{self.onnx_path}: input {INPUT_NAME!r} has shape {mel}; "
                             f"{self.ct2_dir.name} needs [batch, {self.n_mels}, frames]")
        if len(out) != 3 or (isinstance(out[2], int) and out[2] != self.spec.d_model):
            raise ModelError(f"{self.onnx_path}: output {OUTPUT_NAME!r} has shape {out}; the decoder of "
                             f"{self.ct2_dir.name} needs [batch, time, {self.spec.d_model}]")

    def encode(self, features: np.ndarray) -> np.ndarray:
        """Encoder output [batch, 1500, d_model] of features [batch, n_mels, 3000] (or one [n_mels, 3000])."""
        batch = _as_batch(features, self.n_mels)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def _checked_language(self, language: str | None) -> str | None:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        if not self.multilingual:
            if language not in (None, "en"):
                raise ConfigError(f"{self.ct2_dir.name} is English-only; language={language!r} is not supported")
            return "en"
        if language is not None and language not in _LANGUAGE_CODES:
            raise ConfigError(f"unknown Whisper language code {language!r}; valid codes: {', '.join(_LANGUAGE_CODES)}")
        return language

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        if self.multilingual:
            return Tokenizer(self._tokenizers, True, task="transcribe", language=language)
        return Tokenizer(self._tokenizers, False)

    def transcribe(self, audio, language: str | None = None, beam_size: int = 5) -> TranscriptResult:
        """Text of 16 kHz mono float32 ``audio`` (an array or a ``saraikit.audio.Audio``).

        ``language=None`` lets a multilingual model detect it on the first 30 s window.
        """
        import ctranslate2

        if not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"OnnxEncoderWhisper.transcribe: beam_size must be an int >= 1, got {beam_size!r}")
        language = self._checked_language(language)
        probability = None
        start = time.perf_counter()
        features = feature_frames(audio, self.n_mels)
        features_ms = (time.perf_counter() - start) * 1000
        texts, tokens, encoder_ms, decoder_ms = [], [], 0.0, 0.0
        for offset in range(0, features.shape[1], WINDOW_FRAMES):
            start = time.perf_counter()
            encoded = self.encode(features[:, offset:offset + WINDOW_FRAMES])
            encoder_ms += (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            encoder_output = ctranslate2.StorageView.from_array(encoded)
            if language is None:
                token, probability = self.whisper.detect_language(encoder_output)[0][0]
                language = token[2:-2]  # "<|es|>" -> "es"
            tokenizer = self._tokenizer(language)
            prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
            result = self.whisper.generate(encoder_output, [prompt], beam_size=beam_size,
                                           max_length=MAX_DECODE_LENGTH)[0]
            decoder_ms += (time.perf_counter() - start) * 1000
            tokens.extend(result.sequences_ids[0])
            texts.append(tokenizer.decode(result.sequences_ids[0]).strip())
        return TranscriptResult(text=" ".join(t for t in texts if t), language=language,
                                language_probability=probability, features_ms=features_ms,
                                encoder_ms=encoder_ms, decoder_ms=decoder_ms,
                                windows=features.shape[1] // WINDOW_FRAMES, tokens=tokens)
