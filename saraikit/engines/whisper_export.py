"""Whisper's encoder as an FP32 ONNX graph built from CTranslate2 weights.

Why: the encoder is most of Whisper's CPU time on short utterances, and ONNX
Runtime gives it knobs (threads, graph optimisation, INT8 quantization with
``onnxruntime.quantization``) that CTranslate2 does not. Building the graph
from the weights the project already ships avoids torch and any model hub.
The STT backend that runs the exported encoder is
:mod:`saraikit.engines.whisper_onnx`.

Decisions
---------
- The weights come from the project's one CTranslate2 reader,
  :func:`saraikit.models.ct2_file.read_ct2_variables`: only the ``encoder/``
  variables are read, aliases are resolved. The sizes (``encoder_spec``) come
  from the header alone.
- Every weight becomes float32: float16 is converted exactly, int8 / int16
  weights of a model converted with ``--quantization int8`` / ``int16`` are
  dequantized with their ``weight_scale`` (``ct2_file.float_weight``). Rank-0
  int8 / int16 variables are settings (``*/num_heads``, ``decoder/activation``,
  flags), not weights.
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
  every weight is an FP32 initializer; the file is one protobuf (Whisper
  encoders stay far below protobuf's 2 GB limit).
- GELU is the exact erf form, x * 0.5 * (1 + erf(x / sqrt(2))), at opset 17.
  ONNX Runtime at graph_optimization_level EXTENDED / ALL rewrites it to its
  own kernels (com.microsoft Gelu after the convs, BiasGelu in the FFNs),
  exactly what it does with the opset-20 ``Gelu`` op, so both run alike.
  Opset 17 keeps the graph usable by older tools; ``opset >= 20`` switches to
  the ``Gelu`` op. ORT fuses no Attention here (standard ops only), so
  attention stays MatMul / Softmax / MatMul.
- Batch and frames are dynamic (``mel`` is [batch, n_mels, frames]); the
  position encodings are sliced to the conv output length, so any frames <=
  3000 runs (CTranslate2's own encoder accepts shorter inputs the same way).
- ``default_export`` writes ``models/<model>-encoder-onnx/<model>-encoder.onnx``
  and a sidecar ``<model>-encoder.json``; the file name carries the model so
  the inventory (which lists every .onnx under models/) lists it under a
  distinct name. It re-exports only when the ONNX file or sidecar is missing
  or older than ``model.bin``. Files are written with ``core.io.atomic_path``
  (a temporary name in the same folder, renamed when complete; the ONNX file
  is checked with ``onnx.checker`` before the rename) and made world-readable.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from saraikit.core import paths
from saraikit.core.errors import ConfigError, ModelError
from saraikit.core.io import atomic_path
from saraikit.models import catalog
from saraikit.models.ct2_file import float_weight, read_ct2_header, read_ct2_variables

INPUT_NAME = "mel"
OUTPUT_NAME = "encoder_output"
LAYER_NORM_EPSILON = 1e-5
MIN_OPSET, GELU_OP_OPSET = 17, 20  # LayerNormalization needs 17, the Gelu op 20

LAYER_PATTERN = re.compile(r"^encoder/layer_(\d+)/")


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
    weights = {name: float_weight(arrays, name, model_bin) for name in _encoder_weight_names(arrays)}
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
        raise ConfigError(f"whisper_export: opset must be an int >= {MIN_OPSET} (LayerNormalization), got {opset!r}")
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


def write_shared(path: Path, write) -> None:
    """``write(temp_path)`` through ``core.io.atomic_path``, readable by everyone sharing the models folder."""
    with atomic_path(path) as temp:
        os.chmod(temp, 0o644)  # mkstemp makes 0600; the models folder is shared
        write(temp)


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

    write_shared(out_path, write)
    return out_path


def default_export(model_name: str, models_dir: str | Path | None = None) -> Path:
    """``models/<model_name>-encoder-onnx/<model_name>-encoder.onnx`` (+ ``.json`` sidecar), exported only when missing
    or older than the model's ``model.bin``."""
    root = Path(models_dir) if models_dir is not None else paths.models_dir()
    return export_beside(catalog.model_path(model_name, root))


def export_path(ct2_dir: str | Path) -> Path:
    """Where :func:`export_beside` puts the encoder of ``ct2_dir``: ``<parent>/<name>-encoder-onnx/<name>-encoder.onnx``."""
    folder = Path(ct2_dir)
    return folder.parent / f"{folder.name}-encoder-onnx" / f"{folder.name}-encoder.onnx"


def export_beside(ct2_dir: str | Path) -> Path:
    """The FP32 encoder of the CTranslate2 Whisper folder ``ct2_dir`` at :func:`export_path` (+ ``.json`` sidecar),
    exported only when missing or older than its ``model.bin``."""
    ct2_dir = Path(ct2_dir)
    model_bin = ct2_dir / "model.bin"
    if not model_bin.is_file():
        raise ModelError(f"{ct2_dir}: model {ct2_dir.name!r} is not a CTranslate2 folder with model.bin")
    out_path = export_path(ct2_dir)
    sidecar = out_path.with_suffix(".json")
    source_mtime = model_bin.stat().st_mtime
    if all(p.is_file() and p.stat().st_mtime >= source_mtime for p in (out_path, sidecar)):
        return out_path
    export_encoder(ct2_dir, out_path)
    spec = encoder_spec(ct2_dir)
    info = {"source_model": ct2_dir.name, "source_sha256": catalog.sha256_file(model_bin),
            "d_model": spec.d_model, "layers": spec.layers, "heads": spec.heads, "n_mels": spec.n_mels,
            "opset": MIN_OPSET, "input": INPUT_NAME, "output": OUTPUT_NAME}
    write_shared(sidecar, lambda temp: temp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8"))
    return out_path
