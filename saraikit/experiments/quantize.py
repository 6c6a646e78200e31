"""INT8 variants of an ONNX model with ``onnxruntime.quantization``, and how far they drift.

``standard_variants()`` names a sensible set of :class:`Variant` recipes;
``quantize(model, variant, out)`` makes one quantized file and returns a
:class:`QuantResult` row; ``quantize_all`` pre-processes once and makes them
all; ``compare_outputs`` runs FP32 and a variant on the same feeds and
aggregates :func:`fidelity` (cosine, SNR, absolute errors).

Decisions
---------
- ORT does the quantizing; this module only chooses parameters, validates,
  writes files safely and reports. Parameter names follow ORT 1.31's
  ``quantize_dynamic`` / ``quantize_static``.
- Dynamic quantization stores 8-bit weights and quantizes activations at run
  time (``DynamicQuantizeLinear`` -> ``MatMulInteger`` / ``ConvInteger``);
  ORT supports only uint8 activations there, so a dynamic variant's
  activation type is always QUInt8 and its format is QOperator. Static
  quantization calibrates activation ranges on feeds and by default writes
  QDQ (``QuantizeLinear`` / ``DequantizeLinear`` pairs that ORT fuses into
  integer kernels), the format ORT recommends for CPU since 1.11.
- Activation type for static variants: ORT's docs disagree with themselves.
  The quantization guide calls S8S8 (QInt8 activations and weights) with QDQ
  "the first choice"; the ``quantize_static`` docstring of 1.31 recommends
  U8S8 (QUInt8 activations, QInt8 weights) on x86, with ``reduce_range`` on
  CPUs without VNNI (7-bit weights avoid the saturation of the u8*s8 AVX2
  instruction). Both are in ``standard_variants`` so a measurement decides;
  the default static variant is S8S8 with QDQ, and ``reduce_range`` is a
  separate variant for non-VNNI targets (``avx512_vnni`` / ``avx_vnni`` in
  /proc/cpuinfo say whether it matters). S8S8 with QOperator is slow on x86
  according to ORT and is not in the standard set.
- ``op_types_to_exclude`` is implemented, as ORT has no such argument, by
  listing the names of the main graph's nodes of those types in
  ``nodes_to_exclude``. ``nodes_to_exclude`` accepts exact names or glob
  patterns (``"/dp/*"``); a pattern that matches no node is a ConfigError (a
  typo would otherwise quantize everything), and so is an excluded node
  without a name (ORT excludes by name, and ``""`` would exclude every
  unnamed node). Subgraphs (If / Loop bodies) are not quantized: ORT's
  ``EnableSubgraph`` is off unless a variant sets it in ``extra_options``.
- ``extra_options`` keys are checked against :data:`KNOWN_EXTRA_OPTIONS`
  (the keys ORT 1.31 reads) because ORT ignores unknown keys silently.
- Entropy and Percentile calibration get ``CalibStridedMinMax=1`` unless the
  variant sets it: ORT stacks the intermediate tensors of all feeds of one
  ``collect_data`` call with ``np.asarray``, which fails ("inhomogeneous
  shape") as soon as feeds differ in length, as speech and phoneme inputs
  do. With a stride of 1 each feed is collected alone and the histograms are
  merged (despite its name ORT applies the stride to every calibrator).
- What is a caller error and what is a row: bad arguments (an invalid
  variant, a static variant without calibration data, calibration feeds that
  do not match the model's inputs, a pattern that matches nothing, a missing
  or unreadable model) raise ConfigError / ModelError before any work. What
  happens to a given model is a row: ``status`` ``"ok"``, ``"skipped"``
  (already quantized; no op this variant can quantize; ORT quantized no
  node) or ``"failed"`` (ORT raised, or its output failed
  ``onnx.checker.check_model``), with the reason in ``error``.
- "Quantizable" means a node whose type the variant's ORT registry quantizes
  (dynamic: ``IntegerOpsRegistry``; static: ``QDQRegistry`` or
  ``QLinearOpsRegistry``), that is one of the weight-carrying types in
  :data:`WEIGHTED_OP_TYPES` and has a float initializer input (its weight).
  Quantizing only elementwise ops (Add, Relu) or activation-by-activation
  MatMuls shrinks nothing and mostly adds (de)quantize work, so such graphs
  are skipped.
- Files: ORT writes into a fresh hidden folder next to the output, under the
  output's final name (so an external-data file ORT may write,
  ``<name>.data``, keeps a valid relative location). After
  ``onnx.checker.check_model`` passes, data files and then the model are
  moved with ``os.replace``; on any failure the folder is deleted. An older
  file at the output path is left alone when a variant fails or is skipped
  (the row's ``path`` is then None).
- ORT's quantizer logs on the root logger (hundreds of "Inference failed or
  unsupported type" lines on Piper); those records are captured during the
  call and kept, counted per message shape, in ``QuantResult.warnings``;
  the calibrators' ``print`` chatter on stdout is dropped.
- Pre-processing (``preprocess``) is ORT's ``quant_pre_process``: symbolic
  shape inference, ORT basic graph optimisation, ONNX shape inference. The
  symbolic step needs sympy; without it the step is skipped and the note
  says so. If pre-processing fails the original model is used, with the
  reason in the note (never an exception: it is an optimisation).
  Pre-processing is not always a gain: ORT's optimiser fuses a 2-D
  MatMul + Add into Gemm, which dynamic quantization does not handle. So
  ``quantize_all`` quantizes the original model for a variant that would
  find fewer quantizable nodes in the pre-processed one (row ``source``).
- Fidelity compares flattened float64 arrays on their common prefix (TTS
  audio length can change) and records the length difference. SNR is
  ``10 log10(sum(ref^2) / sum((ref - cand)^2))``: +inf when identical. A
  candidate's NaN is a result (the metrics become NaN and the worst-case
  aggregate shows it); a NaN or empty reference is a DataError. Mean SNR
  over feeds is the mean of the dB values.

Piper voices (checked on en_US-joe-medium, ORT 1.31, 2-core AMD EPYC)
----------------------------------------------------------------------
- The graph draws random noise (``RandomNormalLike``) scaled by
  ``scales[0]`` (noise_scale) and ``scales[2]`` (noise_w): with the default
  scales ``[0.667, 1.0, 0.8]`` two FP32 runs differ, even in length; with
  :data:`PIPER_DETERMINISTIC_SCALES` ``[0, 1, 0]`` they are bit-identical.
  Setting only one of the two to 0 is not enough. Fidelity must use
  deterministic scales (``compare_outputs`` checks the reference is
  deterministic and reports it).
- Nearly all weights (59.6 of 63 MB) are Conv weights; the 26 MatMuls have
  no constant weight. So excluding Conv/ConvTranspose leaves almost nothing
  to quantize, and dynamic QInt8 / QUInt8 shrink the file to ~30%.
- Quantizing the text encoder (``/enc_p/``) or the duration predictor
  (``/dp/``) changes the predicted phoneme durations, hence the audio length
  (a few percent) and the alignment: waveform cosine against FP32 then falls
  to ~0.2 whether or not the speech survived. Excluding
  :data:`PIPER_LENGTH_PATH` keeps the length identical and the waveform
  comparable (cosine ~0.94 for dynamic QUInt8 on synthetic phoneme ids).
  Judge full-model variants on length-insensitive measures (ASR of the
  output, DNSMOS) rather than waveform cosine.
- Dynamic QUInt8 weights tracked FP32 better than QInt8 (keep-length
  variants: cosine 0.95 vs 0.80, worst feed 0.94 vs 0.51); ``reduce_range``
  made QInt8 worse. ``per_channel`` changes nothing for dynamic Conv: ORT
  1.31 quantizes ConvInteger weights per tensor.
- Single-run latency (60 synthetic phonemes, best of 3, noisy): FP32 ~0.11 s,
  dynamic QInt8 ~0.5 s (ConvInteger with int8 weights is slow), dynamic
  QUInt8 0.14-0.24 s, static QDQ U8S8 ~0.11 s. Measure with ``saraikit.bench``.
- Static QDQ on the whole voice changes lengths most (QDQ also lands on
  CumSum / Where / Slice of the duration path outside ``/enc_p/`` and
  ``/dp/``); Percentile calibration fails inside ORT ("Too many bins for data
  range") on tensors with a tiny range.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.data.audio import ensure_16k
from saraikit.engines.piper import PiperTTS
from saraikit.engines.whisper import FasterWhisperSTT

METHODS = ("dynamic", "static")
QUANT_TYPES = ("QInt8", "QUInt8")
QUANT_FORMATS = ("QDQ", "QOperator")
CALIBRATIONS = ("MinMax", "Entropy", "Percentile")
HISTOGRAM_CALIBRATIONS = ("Entropy", "Percentile")

WEIGHTED_OP_TYPES = frozenset(
    {"MatMul", "Gemm", "Conv", "ConvTranspose", "Attention", "LSTM", "Gather", "GatherElements",
     "EmbedLayerNormalization"}
)
"""Op types that carry weights and have integer kernels in ORT."""

FLOAT_TENSOR_TYPES = frozenset({1, 10, 11, 16})  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16

KNOWN_EXTRA_OPTIONS = frozenset(
    {
        "ActivationRestrictedAsymmetric", "ActivationSymmetric", "AddQDQPairToWeight", "BlockSize",
        "CalibMaxIntermediateOutputs", "CalibMovingAverage", "CalibMovingAverageConstant", "CalibPercentile",
        "CalibStridedMinMax", "CalibTensorRangeSymmetric", "DedicatedQDQPair", "DefaultTensorType",
        "EnableSubgraph", "ForceQuantizeNoInputCheck", "MatMulConstBOnly", "MinimumRealRange",
        "OpTypesToExcludeOutputQuantization", "QDQDisableWeightAdjustForInt32Bias",
        "QDQKeepRemovableActivations", "QDQOpTypePerChannelSupportToAxis", "QuantizeBias", "SmoothQuant",
        "SmoothQuantAlpha", "SmoothQuantFolding", "TensorQuantOverrides", "UseQDQContribOps",
        "WeightSymmetric", "extra.Sigmoid.nnapi",
    }
)
"""``extra_options`` keys read by ORT 1.31's quantizers and calibrators."""

PIPER_DETERMINISTIC_SCALES = (0.0, 1.0, 0.0)
"""Piper ``scales`` (noise_scale, length_scale, noise_w) that make its output deterministic."""

PIPER_LENGTH_PATH = ("/enc_p/*", "/dp/*")
"""Piper nodes whose quantization changes the audio length (text encoder, duration predictor)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# ---------------------------------------------------------------------------
# Variants


def _choice(owner: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    """Case-insensitive match against ``choices``; returns the canonical spelling."""
    by_lower = {choice.lower(): choice for choice in choices}
    if isinstance(value, str) and value.lower() in by_lower:
        return by_lower[value.lower()]
    raise ConfigError(f"{owner}.{key}: invalid value {value!r}; expected one of {', '.join(choices)}")


def _names(owner: str, key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{owner}.{key}: expected a list of non-empty strings, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Variant:
    """One quantization recipe. ``None`` fields take the method's default.

    ``activation_type``: dynamic is always QUInt8; static defaults to QInt8.
    ``quant_format``: dynamic is always QOperator; static defaults to QDQ.
    ``calibration``: dynamic has none; static defaults to MinMax.
    ``op_types_to_quantize`` None means every type ORT can quantize.
    """

    name: str
    method: str = "dynamic"
    weight_type: str = "QInt8"
    activation_type: str | None = None
    per_channel: bool = False
    reduce_range: bool = False
    quant_format: str | None = None
    calibration: str | None = None
    op_types_to_quantize: tuple[str, ...] | None = None
    nodes_to_exclude: tuple[str, ...] = ()
    op_types_to_exclude: tuple[str, ...] = ()
    extra_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = f"Variant({self.name!r})"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"{owner}.name: use letters, digits, '.', '_' or '-' (it becomes a file name)")
        for key in ("per_channel", "reduce_range"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{owner}.{key}: expected true or false, got {getattr(self, key)!r}")
        method = _choice(owner, "method", self.method, METHODS)
        values = {
            "method": method,
            "weight_type": _choice(owner, "weight_type", self.weight_type, QUANT_TYPES),
            "op_types_to_quantize": _names(owner, "op_types_to_quantize", self.op_types_to_quantize),
            "nodes_to_exclude": _names(owner, "nodes_to_exclude", self.nodes_to_exclude) or (),
            "op_types_to_exclude": _names(owner, "op_types_to_exclude", self.op_types_to_exclude) or (),
            "extra_options": self._checked_extra_options(owner),
        }
        values.update(self._dynamic_fields(owner) if method == "dynamic" else self._static_fields(owner))
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def _dynamic_fields(self, owner: str) -> dict:
        if self.activation_type is not None and _choice(owner, "activation_type", self.activation_type,
                                                        QUANT_TYPES) != "QUInt8":
            raise ConfigError(f"{owner}.activation_type: dynamic quantization supports only QUInt8 activations")
        if self.quant_format is not None and _choice(owner, "quant_format", self.quant_format,
                                                     QUANT_FORMATS) != "QOperator":
            raise ConfigError(
                f"{owner}.quant_format: dynamic quantization always writes integer operators (QOperator); "
                "QDQ needs method='static'"
            )
        if self.calibration is not None:
            raise ConfigError(f"{owner}.calibration: dynamic quantization does not calibrate; leave it None")
        return {"activation_type": "QUInt8", "quant_format": "QOperator", "calibration": None}

    def _static_fields(self, owner: str) -> dict:
        activation = _choice(owner, "activation_type", self.activation_type or "QInt8", QUANT_TYPES)
        weight = _choice(owner, "weight_type", self.weight_type, QUANT_TYPES)
        if activation == "QInt8" and weight == "QUInt8":
            raise ConfigError(f"{owner}: ONNX Runtime does not support QInt8 activations with QUInt8 weights")
        return {
            "activation_type": activation,
            "quant_format": _choice(owner, "quant_format", self.quant_format or "QDQ", QUANT_FORMATS),
            "calibration": _choice(owner, "calibration", self.calibration or "MinMax", CALIBRATIONS),
        }

    def _checked_extra_options(self, owner: str) -> dict:
        if not isinstance(self.extra_options, Mapping):
            raise ConfigError(f"{owner}.extra_options: expected a mapping, got {type(self.extra_options).__name__}")
        unknown = sorted(set(self.extra_options) - KNOWN_EXTRA_OPTIONS)
        if unknown:
            raise ConfigError(
                f"{owner}.extra_options: unknown key(s) {unknown} (ONNX Runtime would ignore them); "
                f"known keys: {', '.join(sorted(KNOWN_EXTRA_OPTIONS))}"
            )
        return dict(self.extra_options)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Variant":
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ConfigError(f"Variant: unknown key(s) {unknown}; valid keys: {', '.join(sorted(valid))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """``"quant-<12 hex>"``: stable across processes, for results rows."""
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return f"quant-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


CONV_TYPES = ("Conv", "ConvTranspose")


def standard_variants(include_static: bool = True) -> list[Variant]:
    """The usual INT8 recipes (see the module docstring for the activation-type choice)."""
    variants = [
        Variant("dynamic-s8", weight_type="QInt8"),
        Variant("dynamic-u8", weight_type="QUInt8"),
        Variant("dynamic-s8-perchannel", weight_type="QInt8", per_channel=True),
        Variant("dynamic-s8-reducerange", weight_type="QInt8", reduce_range=True),
        Variant("dynamic-s8-noconv", weight_type="QInt8", op_types_to_exclude=CONV_TYPES),
    ]
    if include_static:
        variants += [
            Variant("static-qdq-s8s8-minmax", method="static", activation_type="QInt8", calibration="MinMax"),
            Variant("static-qdq-s8s8-entropy", method="static", activation_type="QInt8", calibration="Entropy"),
            Variant("static-qdq-s8s8-percentile", method="static", activation_type="QInt8",
                    calibration="Percentile"),
            Variant("static-qdq-u8s8-minmax", method="static", activation_type="QUInt8", calibration="MinMax"),
            Variant("static-qdq-s8s8-minmax-noconv", method="static", activation_type="QInt8",
                    calibration="MinMax", op_types_to_exclude=CONV_TYPES),
        ]
    return variants


# ---------------------------------------------------------------------------
# Calibration data


def check_feeds(model, feeds_list: Sequence[Mapping[str, Any]], what: str = "feed") -> list[dict[str, np.ndarray]]:
    """Feeds as arrays, checked against the model's inputs (names, dtypes, static dims).

    ``model`` is an ``.onnx`` path, a ModelInfo or a session. Nothing is cast:
    a float64 array for a float32 input is an error, not a silent copy."""
    from saraikit.experiments.synthetic import input_specs

    specs = {spec.name: spec for spec in input_specs(model)}
    if isinstance(feeds_list, Mapping) or not isinstance(feeds_list, Sequence) or not feeds_list:
        raise ConfigError(f"{what}s: expected a non-empty list of {{input name: array}} dicts")
    checked = []
    for index, feeds in enumerate(feeds_list):
        where = f"{what} {index}"
        if not isinstance(feeds, Mapping):
            raise ConfigError(f"{where}: expected a dict of input name -> array, got {type(feeds).__name__}")
        unknown = sorted(set(feeds) - set(specs))
        missing = sorted(set(specs) - set(feeds))
        if unknown or missing:
            raise ConfigError(
                f"{where}: unknown input(s) {unknown}, missing input(s) {missing}; the model's inputs are "
                f"{sorted(specs)}"
            )
        checked.append({name: _checked_array(where, specs[name], value) for name, value in feeds.items()})
    return checked


def _checked_array(where: str, spec, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype != np.dtype(spec.dtype):
        raise ConfigError(f"{where}, input {spec.name!r}: dtype {array.dtype}, the model expects {spec.dtype}")
    static_ok = all(not isinstance(dim, int) or dim == size for dim, size in zip(spec.shape, array.shape))
    if array.ndim != len(spec.shape) or not static_ok:
        raise ConfigError(
            f"{where}, input {spec.name!r}: shape {list(array.shape)}, the model expects {spec.shape}"
        )
    return array


class CalibrationReader:
    """ORT calibration data over a list of feed dicts, validated against the model first.

    Duck-typed ``onnxruntime.quantization.CalibrationDataReader`` (ORT checks
    for ``get_next``). ``set_range`` serves ORT's ``CalibStridedMinMax``;
    ``rewind`` lets one reader serve several variants."""

    def __init__(self, model, feeds_list: Sequence[Mapping[str, Any]]):
        self.feeds = check_feeds(model, feeds_list, what="calibration feed")
        self._next, self._end = 0, len(self.feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return self.feeds[self._next - 1]

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self):
        return iter(self.get_next, None)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self.feeds))

    def rewind(self) -> None:
        self.set_range(0, len(self.feeds))


# ---------------------------------------------------------------------------
# Pre-processing


@dataclass
class Preprocessed:
    """The model to quantize: ``path`` is the pre-processed file, or the source when ``ok`` is False."""

    source: str
    path: str
    ok: bool
    note: str
    seconds: float


def preprocess(model_path: str | Path, out_path: str | Path) -> Preprocessed:
    """ORT's ``quant_pre_process`` into ``out_path``; falls back to the original model on failure."""
    source = _existing_model(model_path)
    out_path = Path(out_path)
    notes = []
    symbolic = importlib.util.find_spec("sympy") is not None
    if not symbolic:
        notes.append("symbolic shape inference skipped: sympy is not installed (ONNX shape inference ran)")
    started = time.perf_counter()
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with _Staging(out_path) as stage, _captured_logs() as records:
            quant_pre_process(str(source), str(stage.path), skip_symbolic_shape=not symbolic)
            _check_model(stage.path)
            stage.commit()
        notes += [r.getMessage().splitlines()[0] for r in records if r.levelno >= logging.ERROR][:3]
    except Exception as error:  # noqa: BLE001 - any failure means "use the original"
        note = f"pre-processing failed ({type(error).__name__}: {_first_line(error)}); using the original model"
        return Preprocessed(str(source), str(source), False, "; ".join([note] + notes), time.perf_counter() - started)
    return Preprocessed(str(source), str(out_path), True, "; ".join(notes), time.perf_counter() - started)


# ---------------------------------------------------------------------------
# Quantizing


@dataclass
class QuantResult:
    """One variant's outcome. ``status`` is ok / skipped / failed; ``error`` says why when not ok.

    ``seconds`` is the wall time of ORT's quantization (with calibration) and the checks."""

    variant: Variant
    path: str | None
    bytes: int | None
    ok: bool
    error: str | None
    seconds: float
    node_types: dict = field(default_factory=dict)
    status: str = "ok"
    warnings: list[str] = field(default_factory=list)
    float_weight_ops: dict = field(default_factory=dict)  # weighted ops still reading a float initializer

    def node_summary(self) -> str:
        """Quantization ops and the weighted ops left in float, e.g. ``"MatMulInteger 1 | float: Conv 2"``."""
        quant = [f"{op} {n}" for op, n in sorted(self.node_types.items()) if _is_quant_op(op)]
        kept = [f"{op} {n}" for op, n in sorted(self.float_weight_ops.items())]
        return ", ".join(quant) + (f" | float: {', '.join(kept)}" if kept else "")


def quantize(
    model_path: str | Path,
    variant: Variant,
    out_path: str | Path,
    calibration_reader: CalibrationReader | Sequence[Mapping[str, Any]] | None = None,
) -> QuantResult:
    """Quantize ``model_path`` with ``variant`` into ``out_path`` (call :func:`preprocess` first).

    Static variants need ``calibration_reader`` (a :class:`CalibrationReader`
    or a list of feed dicts); dynamic variants ignore it."""
    source = _existing_model(model_path)
    if Path(out_path).resolve() == source.resolve():
        raise ConfigError(f"quantize: out_path {out_path} is the source model; choose another file")
    reader = _reader_for(source, variant, calibration_reader)
    graph = _load_graph(source)
    excluded = _excluded_nodes(graph, variant)

    def row(status: str, error: str | None, seconds: float = 0.0, **extra) -> QuantResult:
        return QuantResult(variant, None, None, status == "ok", error, seconds, status=status, **extra)

    already = _already_quantized(source)
    if already:
        return row("skipped", already)
    quantizable = _quantizable_nodes(graph, variant, excluded)
    if not quantizable:
        return row("skipped", _nothing_to_quantize(graph, variant, excluded))

    started = time.perf_counter()
    with _Staging(Path(out_path)) as stage, _captured_logs() as records:
        try:
            _run_ort(source, stage.path, variant, excluded, reader)
            _check_model(stage.path)
            node_types = _op_histogram(stage.path)
            float_weight_ops = _float_weight_ops(_load_graph(stage.path))
        except Exception as error:  # noqa: BLE001 - every ORT failure becomes a row
            seconds = time.perf_counter() - started
            return row("failed", f"{type(error).__name__}: {_first_line(error)}", seconds,
                       warnings=_summarize(records))
        seconds = time.perf_counter() - started
        warnings = _summarize(records)
        if not any(_is_quant_op(op) for op in node_types):
            return row("skipped", "ONNX Runtime quantized no node (its registry accepted none of the "
                       f"{len(quantizable)} candidate nodes)", seconds, node_types=node_types, warnings=warnings)
        size = stage.commit()
    return QuantResult(variant, str(out_path), size, True, None, seconds, node_types, "ok", warnings,
                       float_weight_ops)


def quantize_all(
    model_path: str | Path,
    variants: Iterable[Variant],
    out_dir: str | Path,
    calibration_feeds: Sequence[Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Pre-process once, quantize every variant into ``out_dir``; one row per variant.

    Files are ``<stem>.<variant>.onnx``; the pre-processed model is
    ``<stem>.preprocessed.onnx`` and its note is in ``frame.attrs["preprocess"]``.
    Each variant quantizes the pre-processed model unless that leaves it fewer
    nodes to quantize than the original (column ``source``)."""
    from saraikit.models.inspect import inspect_model
    from saraikit.core.progress import progress as progress_bar

    source = _existing_model(model_path)
    variants = list(variants)
    _check_variant_names(variants)
    static = [v.name for v in variants if v.method == "static"]
    if static and calibration_feeds is None:
        raise ConfigError(f"static variants {static} need calibration_feeds (a list of {{input: array}} dicts)")
    if calibration_feeds is not None:
        check_feeds(source, calibration_feeds, what="calibration feed")
    graph = _load_graph(source)
    for variant in variants:  # pattern typos fail before hours of work, not halfway
        _excluded_nodes(graph, variant)

    out_dir = Path(out_dir)
    stem = source.name.removesuffix(".onnx")
    prepared = preprocess(source, out_dir / f"{stem}.preprocessed.onnx")
    prepared_graph = _load_graph(Path(prepared.path)) if prepared.ok else None
    fp32_bytes = inspect_model(source).bytes
    rows = []
    for variant in progress_bar(variants, desc=f"quantize {stem}", disable=not progress):
        use_prepared = prepared_graph is not None and _prepared_serves(variant, graph, prepared_graph)
        model = Path(prepared.path) if use_prepared else source
        reader = CalibrationReader(model, calibration_feeds) if variant.method == "static" else None
        result = quantize(model, variant, out_dir / f"{stem}.{variant.name}.onnx", reader)
        rows.append(_row(result, fp32_bytes, "preprocessed" if use_prepared else "original"))
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
    frame.attrs["preprocess"] = dataclasses.asdict(prepared)
    return frame


ROW_COLUMNS = [
    "name", "status", "ok", "reason", "bytes", "size_ratio", "node_types", "quantize_s", "path", "source",
    "config_key",
]


def _prepared_serves(variant: Variant, original, prepared) -> bool:
    """False when pre-processing left this variant fewer nodes to quantize, or renamed an excluded node.

    ORT's optimiser fuses a 2-D MatMul + Add into Gemm, which dynamic
    quantization does not quantize: the original model is the better source then."""
    try:
        excluded = _excluded_nodes(prepared, variant)
    except ConfigError:
        return False
    before = _quantizable_nodes(original, variant, _excluded_nodes(original, variant))
    return len(_quantizable_nodes(prepared, variant, excluded)) >= len(before)


def _row(result: QuantResult, fp32_bytes: int, source: str) -> dict:
    return {
        "name": result.variant.name,
        "status": result.status,
        "ok": result.ok,
        "reason": result.error,
        "bytes": result.bytes,
        "size_ratio": result.bytes / fp32_bytes if result.bytes else None,
        "node_types": result.node_summary(),
        "quantize_s": result.seconds,
        "path": result.path,
        "source": source,
        "config_key": result.variant.key(),
    }


def _check_variant_names(variants: list[Variant]) -> None:
    if not all(isinstance(v, Variant) for v in variants):
        raise ConfigError("variants: expected Variant objects (see standard_variants())")
    duplicates = sorted(name for name, n in Counter(v.name for v in variants).items() if n > 1)
    if duplicates:
        raise ConfigError(f"variants: duplicate names {duplicates} (names become file names)")


def _reader_for(source: Path, variant: Variant, calibration) -> CalibrationReader | None:
    if variant.method != "static":
        return None
    if calibration is None:
        raise ConfigError(
            f"variant {variant.name!r} is static: pass calibration_reader (a CalibrationReader or a list of "
            "{input name: array} feed dicts)"
        )
    feeds = calibration.feeds if isinstance(calibration, CalibrationReader) else calibration
    return CalibrationReader(source, feeds)  # validated against this model, read from the start


def _run_ort(source: Path, output: Path, variant: Variant, excluded: list[str], reader) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    common = dict(
        model_input=str(source),
        model_output=str(output),
        op_types_to_quantize=list(variant.op_types_to_quantize or []),
        per_channel=variant.per_channel,
        reduce_range=variant.reduce_range,
        weight_type=QuantType[variant.weight_type],
        nodes_to_exclude=list(excluded),
        extra_options=_ort_extra_options(variant),
    )
    if variant.method == "dynamic":
        quantize_dynamic(**common)
    else:
        quantize_static(
            calibration_data_reader=reader,
            quant_format=QuantFormat[variant.quant_format],
            activation_type=QuantType[variant.activation_type],
            calibrate_method=CalibrationMethod[variant.calibration],
            **common,
        )


def _ort_extra_options(variant: Variant) -> dict:
    options = dict(variant.extra_options)  # a copy: ORT adds keys to the dict it is given
    if variant.calibration in HISTOGRAM_CALIBRATIONS:
        # One feed per collect call: ORT stacks each call's tensors with np.asarray, which fails when
        # feeds of different lengths give intermediate tensors of different shapes; histograms merge across calls.
        options.setdefault("CalibStridedMinMax", 1)
    return options


# --- graph facts --------------------------------------------------------------


def _load_graph(path: Path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False).graph
    except Exception as error:  # noqa: BLE001 - protobuf raises several types
        raise ModelError(f"{path}: not a readable ONNX model ({type(error).__name__}: {error})") from error


def _excluded_nodes(graph, variant: Variant) -> list[str]:
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


def _quantizable_types(variant: Variant) -> set[str]:
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


def _quantizable_nodes(graph, variant: Variant, excluded: list[str]) -> list[str]:
    types, excluded, weighted = _quantizable_types(variant), set(excluded), _has_float_weight(graph)
    return [
        node.name or node.op_type
        for node in graph.node
        if node.op_type in types and not (node.name and node.name in excluded) and weighted(node)
    ]


def _float_weight_ops(graph) -> dict[str, int]:
    weighted = _has_float_weight(graph)
    return dict(Counter(n.op_type for n in graph.node if n.op_type in WEIGHTED_OP_TYPES and weighted(n)))


def _nothing_to_quantize(graph, variant: Variant, excluded: list[str]) -> str:
    types = sorted(_quantizable_types(variant))
    reason = f"no quantizable ops ({', '.join(types)} with float weights) in the graph"
    if excluded:
        everything = dataclasses.replace(variant, nodes_to_exclude=(), op_types_to_exclude=())
        n_without = len(_quantizable_nodes(graph, everything, []))
        if n_without:
            reason += f": the variant excludes all {n_without} of them"
    return reason


def _already_quantized(path: Path) -> str | None:
    from saraikit.models.inspect import inspect_model

    details = inspect_model(path).details
    if not details["quantized"]:
        return None
    evidence = details["quantization_evidence"]
    nodes = {op: n for op, n in evidence.items() if _is_quant_op(op) and n}
    if nodes:
        listing = ", ".join(f"{op} {n}" for op, n in sorted(nodes.items()))
        return f"already quantized ({sum(nodes.values())} quantization nodes: {listing})"
    share = evidence["8bit_initializer_bytes"] / max(evidence["initializer_bytes"], 1)
    return f"already quantized (int8/uint8 initializers hold {share:.0%} of the weight bytes)"


def _is_quant_op(op_type: str) -> bool:
    from saraikit.models.inspect import is_quant_op

    return is_quant_op(op_type)


def _op_histogram(path: Path) -> dict[str, int]:
    from saraikit.models.inspect import inspect_model

    return dict(inspect_model(path).details["op_histogram"])


def _check_model(path: Path) -> None:
    import onnx

    onnx.checker.check_model(str(path))  # the path form also checks external data


def _existing_model(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"ONNX model not found: {path}")
    return path


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or repr(error)
    return text.splitlines()[0][:300]


# --- files and logs -------------------------------------------------------------


class _Staging:
    """A hidden folder next to ``out_path`` to write into; ``commit`` moves the result in place.

    ``path`` has the final file name, so external-data references written
    relative to it stay valid after the move. Leaving the block without
    ``commit`` deletes everything that was written."""

    def __init__(self, out_path: Path):
        self.out_path = out_path

    def __enter__(self) -> "_Staging":
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.out_path.name}.", dir=self.out_path.parent))
        self.path = self.folder / self.out_path.name
        return self

    def commit(self) -> int:
        """Move the written files next to ``out_path`` (the model last); return their total bytes."""
        if not self.path.is_file():
            raise ModelError(f"nothing was written to {self.path}")
        files = [f for f in self.folder.iterdir() if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        for file in sorted(files, key=lambda f: f == self.path):
            os.replace(file, self.out_path.parent / file.name)
        return size

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _ListHandler(logging.Handler):
    def __init__(self, records: list):
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _captured_logs():
    """Collect root-logger warnings (ORT's quantizer logs there) instead of printing them.

    ORT's calibrators also ``print`` progress chatter; stdout is swallowed too."""
    root = logging.getLogger()
    records: list[logging.LogRecord] = []
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [_ListHandler(records)]
    root.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield records
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def _summarize(records: list[logging.LogRecord], keep: int = 10) -> list[str]:
    """Distinct message shapes with counts; quoted tensor names are blanked to group them."""
    shapes = Counter(re.sub(r"'[^']*'", "'…'", r.getMessage().strip().splitlines()[0])[:200] for r in records)
    return [f"{message} (x{n})" for message, n in shapes.most_common(keep)]


# ---------------------------------------------------------------------------
# Fidelity


@dataclass
class Fidelity:
    """How close a candidate output is to the reference, on their common prefix."""

    cosine: float
    snr_db: float
    max_abs_error: float
    mean_abs_error: float
    n_compared: int
    length_diff: int  # candidate size - reference size (0 when the lengths agree)


def fidelity(reference_outputs, candidate_outputs) -> Fidelity:
    """Cosine, SNR (dB) and absolute errors of two arrays, flattened, on their common prefix."""
    reference = np.asarray(reference_outputs, dtype=np.float64).ravel()
    candidate = np.asarray(candidate_outputs, dtype=np.float64).ravel()
    n = min(reference.size, candidate.size)
    if n == 0:
        raise DataError(f"fidelity: nothing to compare (reference has {reference.size}, "
                        f"candidate {candidate.size} values)")
    if not np.all(np.isfinite(reference)):
        raise DataError(f"fidelity: the reference has {int(np.sum(~np.isfinite(reference)))} non-finite values")
    ref, cand = reference[:n], candidate[:n]
    error = cand - ref
    return Fidelity(
        cosine=_cosine(ref, cand),
        snr_db=_snr_db(float(ref @ ref), float(error @ error)),
        max_abs_error=float(np.max(np.abs(error))),
        mean_abs_error=float(np.mean(np.abs(error))),
        n_compared=int(n),
        length_diff=int(candidate.size - reference.size),
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:  # undefined; two zero vectors are the same output
        return 1.0 if not np.any(a) and not np.any(b) else float("nan")
    return float(a @ b / norms)


def _snr_db(signal_power: float, noise_power: float) -> float:
    if np.isnan(noise_power):
        return float("nan")
    if noise_power == 0.0:
        return float("inf")
    if signal_power == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(signal_power / noise_power))


@dataclass
class OutputComparison:
    """Fidelity of a variant against FP32 over several feeds, per output and aggregated.

    ``rows`` hold one Fidelity per (feed, output). Worst = lowest cosine /
    SNR, highest error; NaN in any row makes the worst NaN."""

    rows: list[dict]
    n_feeds: int
    cosine_mean: float
    cosine_worst: float
    snr_db_mean: float
    snr_db_worst: float
    max_abs_error: float
    mean_abs_error: float
    length_diff_max: int
    reference_deterministic: bool | None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def compare_outputs(
    fp32_path: str | Path,
    variant_path: str | Path,
    feeds_list: Sequence[Mapping[str, Any]],
    ort_config=None,
    check_determinism: bool = True,
) -> OutputComparison:
    """Run both models on the same feeds and aggregate :func:`fidelity` over feeds and outputs.

    With ``check_determinism`` the FP32 model runs twice on the first feed:
    ``reference_deterministic`` False means the comparison measures the
    model's own randomness too (Piper with noise scales > 0)."""
    from saraikit.engines.sessions import build_ort_session

    if variant_path is None:
        raise ModelError("compare_outputs: variant_path is None (that variant was skipped or failed)")
    feeds_list = check_feeds(fp32_path, feeds_list)
    reference = build_ort_session(fp32_path, ort_config)
    candidate = build_ort_session(variant_path, ort_config)
    names = [output.name for output in reference.get_outputs()]
    missing = sorted(set(names) - {output.name for output in candidate.get_outputs()})
    if missing:
        raise ModelError(f"{variant_path}: lacks output(s) {missing} of {fp32_path}")
    deterministic = None
    rows = []
    for index, feeds in enumerate(feeds_list):
        expected = reference.run(names, feeds)
        if check_determinism and index == 0:
            again = reference.run(names, feeds)
            deterministic = all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(expected, again))
        got = candidate.run(names, feeds)
        for name, ref, cand in zip(names, expected, got):
            rows.append({"feed": index, "output": name, **dataclasses.asdict(fidelity(ref, cand))})
    return _aggregate(rows, len(feeds_list), deterministic)


def _aggregate(rows: list[dict], n_feeds: int, deterministic: bool | None) -> OutputComparison:
    def column(key):
        return np.array([row[key] for row in rows], dtype=np.float64)

    return OutputComparison(
        rows=rows,
        n_feeds=n_feeds,
        cosine_mean=float(np.mean(column("cosine"))),
        cosine_worst=float(np.min(column("cosine"))),
        snr_db_mean=float(np.mean(column("snr_db"))),
        snr_db_worst=float(np.min(column("snr_db"))),
        max_abs_error=float(np.max(column("max_abs_error"))),
        mean_abs_error=float(np.mean(column("mean_abs_error"))),
        length_diff_max=int(max(abs(row["length_diff"]) for row in rows)),
        reference_deterministic=deterministic,
    )


def fidelity_figures(comparison: OutputComparison) -> list:
    """Store-ready figures (provenance "measured", n = number of feeds)."""
    from saraikit.core.store import Figure

    n, extra = comparison.n_feeds, {"reference_deterministic": comparison.reference_deterministic}
    values = [
        ("fidelity_cosine_mean", comparison.cosine_mean, ""),
        ("fidelity_cosine_worst", comparison.cosine_worst, ""),
        ("fidelity_snr_db_mean", comparison.snr_db_mean, "dB"),
        ("fidelity_snr_db_worst", comparison.snr_db_worst, "dB"),
        ("fidelity_max_abs_error", comparison.max_abs_error, ""),
        ("fidelity_length_diff_max", comparison.length_diff_max, "values"),
    ]
    return [Figure(metric, value, unit, n=n, extra=extra) for metric, value, unit in values]


# ===========================================================================
# Judging variants on real inputs (notebook 01_quantization)
#
# Decisions:
# - The candidates of a model are its FP32 file ("fp32", the baseline) and
#   every ok variant. Other rows have a role (ROLES) and are never judged:
#   CTranslate2's own compute types for a Whisper encoder ("reference": another
#   engine, the competitor to beat) and FP32 measured again after the variants
#   ("control": candidates are timed one after the other, so a drift of the
#   machine's speed would otherwise pass for a speed-up or a slow-down).
# - compare_many runs FP32 once per feed and every variant on the same feeds
#   (compare_outputs would re-run FP32 for each variant).
# - Fidelity against FP32 is a valid quality measure only when the output
#   keeps its length: a Piper variant that changes phoneme durations shifts
#   the waveform, and cosine / SNR then mostly measure the shift. Such a row
#   is judged on its task metric (round-trip WER) alone, and says so. A
#   QualityBudget threshold set to None is not applied at all.
# - WER uses greedy decoding (beam 1) for every row: the comparison is
#   between encoders, and beam search would triple the decoding time. ONNX
#   encoder rows decode with CTranslate2 at float32, so only the encoder
#   differs between them.
# - Transcription for WER runs CTranslate2 on one thread: the text does not
#   depend on it, and with two threads on this 2-vCPU box, while other jobs
#   ran, CTranslate2's float32 decoding slowed down 10-50x (2.8-13.7 s
#   instead of 0.1-0.2 s for 4-26 tokens; the same clips decoded in 0.2 s a
#   few minutes later), which turned a 1-minute WER pass into 10.
# - The recommendation rule (recommend): a variant is rejected when it is
#   slower than FP32 (the bootstrap CI of the P50 ratio lies above 1), when
#   its fidelity is below the budget (mean cosine / mean SNR over held-out
#   feeds, if comparable), when its WER increase over FP32 exceeds the budget
#   on any dataset (point estimate, in percentage points; the paired CI is
#   shown beside it), or when its task metric was not measured. Every reason
#   that applies is listed. The recommended variant is the accepted one with
#   the lowest P50 among those significantly faster than FP32 (ratio CI below
#   1); if none is, there is no recommendation and the message says so.
# - The fidelity gates are meant to catch gross breakage (static-QDQ Whisper
#   encoders gave cosine ~0.45-0.68 and made the decoder loop to its token
#   limit); the task metric judges the finer differences. prescreen() gives
#   the speed / fidelity reasons alone, so the caller can skip transcribing
#   variants that are rejected anyway.


PIPER_KEEP_LENGTH = Variant("dynamic-u8-keeplength", weight_type="QUInt8", nodes_to_exclude=PIPER_LENGTH_PATH)
"""Dynamic QUInt8 with Piper's text encoder and duration predictor kept FP32: the audio keeps its length."""


def named_variants() -> dict[str, Variant]:
    """Every named recipe: :func:`standard_variants` plus the Piper-specific :data:`PIPER_KEEP_LENGTH`."""
    return {variant.name: variant for variant in [*standard_variants(), PIPER_KEEP_LENGTH]}


def variants_by_name(names: Iterable[str]) -> list[Variant]:
    """The variants called ``names``, in that order (ConfigError naming the unknown ones)."""
    if isinstance(names, str):
        raise ConfigError(f"variants: expected a list of names, got the string {names!r}")
    known = named_variants()
    names = list(names)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"unknown variant name(s) {unknown}; known: {', '.join(known)}")
    return [known[name] for name in names]


def compare_many(
    fp32_path: str | Path,
    variant_paths: Mapping[str, str | Path],
    feeds_list: Sequence[Mapping[str, Any]],
    ort_config=None,
) -> dict[str, OutputComparison]:
    """:func:`compare_outputs` for several variants, FP32 run once per feed."""
    from saraikit.engines.sessions import build_ort_session

    feeds_list = check_feeds(fp32_path, feeds_list)
    reference = build_ort_session(fp32_path, ort_config)
    names = [output.name for output in reference.get_outputs()]
    expected = [reference.run(names, feeds) for feeds in feeds_list]
    again = reference.run(names, feeds_list[0])
    deterministic = all(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(expected[0], again))
    del reference
    comparisons = {}
    for variant, path in variant_paths.items():
        candidate = build_ort_session(path, ort_config)
        missing = sorted(set(names) - {output.name for output in candidate.get_outputs()})
        if missing:
            raise ModelError(f"{path}: lacks output(s) {missing} of {fp32_path}")
        rows = []
        for index, (feeds, outputs) in enumerate(zip(feeds_list, expected)):
            for name, ref, cand in zip(names, outputs, candidate.run(names, feeds)):
                rows.append({"feed": index, "output": name, **dataclasses.asdict(fidelity(ref, cand))})
        comparisons[variant] = _aggregate(rows, len(feeds_list), deterministic)
    return comparisons


# --- CTranslate2's own INT8: the reference for Whisper encoders ----------------


def ct2_encoder_bench(ct2_dir: str | Path, feeds: Mapping[str, np.ndarray], compute_type: str = "int8",
                      plan: Mapping | None = None, cpu_threads: int = 0) -> dict:
    """CTranslate2's Whisper encoder on the same ``mel`` feed; the dict ``saraikit.bench.run_onnx_bench`` returns.

    Module level so :func:`saraikit.trials.run_isolated` can run it in a fresh process."""
    import ctranslate2

    from saraikit.engines.sessions import Ct2WhisperConfig, build_ct2_whisper
    from saraikit.core.timing import TimingPlan, measure, memory_snapshot, timed

    timing_plan = TimingPlan.from_dict(dict(plan or {}))
    before = memory_snapshot()
    config = Ct2WhisperConfig(compute_type=compute_type, cpu_threads=cpu_threads)
    whisper, load_s = timed(lambda: build_ct2_whisper(ct2_dir, config))
    loaded = memory_snapshot()
    mel = ctranslate2.StorageView.from_array(np.ascontiguousarray(feeds["mel"], dtype=np.float32))

    def run():
        return whisper.encode(mel, to_cpu=True)

    _, first_s = timed(run)
    timing = measure(run, timing_plan)
    return {
        "load_s": load_s, "first_inference_ms": first_s * 1000, "samples_ms": timing.samples_ms,
        "warmup_ms": timing.warmup_ms, "method": {**timing.method(), "engine": "ctranslate2",
                                                   "compute_type": compute_type},
        "memory": {"before": before.to_dict(), "loaded": loaded.to_dict(), "after": memory_snapshot().to_dict()},
        "input_shapes": {"mel": list(np.shape(feeds["mel"]))},
    }


def bench_ct2_encoder(ct2_dir: str | Path, feeds: Mapping[str, np.ndarray], compute_type: str, plan: Mapping,
                      store=None, run_id: str | None = None, experiment: str = "quantization",
                      model_name: str | None = None, cpu_threads: int | None = None, timeout_s: float = 600.0):
    """:func:`ct2_encoder_bench` in a fresh process, stored like ``saraikit.bench.bench_onnx``; a BenchOutcome.

    ``cpu_threads`` None means one thread per physical core, what ONNX Runtime uses by default:
    CTranslate2's own default (4 threads) oversubscribes a 2-core CPU (tiny.en int8 encoder,
    quiet 2-core EPYC: 182 ms with the default, 145 ms with 2 threads)."""
    import psutil

    from saraikit.core import stats
    from saraikit.experiments import bench
    from saraikit.models.catalog import sha256_file
    from saraikit.core.store import Trial
    from saraikit.core.trials import run_isolated

    if cpu_threads is None:
        cpu_threads = psutil.cpu_count(logical=False) or 0
    result = run_isolated(ct2_encoder_bench, str(ct2_dir), dict(feeds), compute_type, dict(plan), cpu_threads,
                          timeout_s=timeout_s)
    raw, error = (result.value, None) if result.ok else (None, f"{result.status}: {result.reason()}")
    summary = stats.summarize(raw["samples_ms"]) if raw else None
    trial_id = None
    if store is not None:
        trial = Trial(
            experiment=experiment, model_name=model_name or f"{Path(ct2_dir).name}:ct2-{compute_type}",
            model_sha256=sha256_file(Path(ct2_dir) / "model.bin"),
            config={"engine": "ctranslate2", "compute_type": compute_type, "cpu_threads": cpu_threads,
                    "plan": dict(plan), "inputs": "real"},
            status="ok" if raw else "failed", error=error,
            method={**(raw["method"] if raw else {}), "isolated": True, "inputs": "real"},
            samples=raw["samples_ms"] if raw else None, figures=bench.bench_figures(raw, summary) if raw else [],
        )
        trial_id = store.record(run_id, trial)
    return bench.BenchOutcome(raw is not None, summary, raw, error, trial_id)


# --- task metrics ---------------------------------------------------------------


def encoder_transcripts(ct2_dir: str | Path, encoder_path: str | Path, clips: Sequence,
                        beam_size: int = 1) -> list[str]:
    """Text of each clip through Whisper with the ONNX encoder ``encoder_path`` (FP32 or a variant).

    The decoder is CTranslate2 at float32 for every encoder, so only the encoder differs between rows."""
    from saraikit.experiments.realinputs import read_16k
    from saraikit.engines.sessions import Ct2WhisperConfig
    from saraikit.engines.whisper_onnx import OnnxEncoderWhisper

    stt = OnnxEncoderWhisper(ct2_dir, encoder_path, ct2_config=Ct2WhisperConfig(compute_type="float32", cpu_threads=1))
    return [stt.transcribe(read_16k(clip), language=clip.language, beam_size=beam_size).text for clip in clips]


FASTER_WHISPER_OPTIONS = {"without_timestamps": True, "temperature": 0.0, "condition_on_previous_text": False}
"""faster-whisper options that decode like ``OnnxEncoderWhisper``: temperature 0 without fallback, no timestamps."""


def ct2_transcripts(ct2_dir: str | Path, clips: Sequence, compute_type: str = "int8", beam_size: int = 1) -> list[str]:
    """Text of each clip through faster-whisper at CTranslate2's ``compute_type``, one thread.

    Decoding options: :data:`FASTER_WHISPER_OPTIONS`."""
    from saraikit.experiments.realinputs import read_16k
    from saraikit.engines.sessions import Ct2WhisperConfig

    texts = []
    for language in dict.fromkeys(clip.language for clip in clips):  # one stage per language, order kept below
        stt = FasterWhisperSTT(ct2_dir, Ct2WhisperConfig(compute_type=compute_type, cpu_threads=1), language=language,
                               beam_size=beam_size, transcribe_options=FASTER_WHISPER_OPTIONS)
        stt.load()
        texts += [(clip.id, stt.run(read_16k(clip)).value.text) for clip in clips if clip.language == language]
    by_id = dict(texts)
    return [by_id[clip.id] for clip in clips]


def piper_round_trip(voice_path: str | Path, sentences: Sequence[str], stt,
                     config_path: str | Path | None = None) -> list[str]:
    """Speak each sentence with the Piper voice at ``voice_path`` (scales [0, 1, 0]) and transcribe it with ``stt``.

    ``stt`` is a loaded 16 kHz STT stage (e.g. ``saraikit.engines.whisper.FasterWhisperSTT``);
    ``config_path`` is the voice's ``.onnx.json`` (a variant has none of its own: pass the FP32 voice's)."""
    noise_scale, length_scale, noise_w = PIPER_DETERMINISTIC_SCALES
    tts = PiperTTS(voice_path, config_path=config_path, noise_scale=noise_scale, length_scale=length_scale,
                   noise_w=noise_w)
    tts.load()
    return [stt.run(ensure_16k(tts.run(sentence).value)).value.text for sentence in sentences]


def wer_reports(ids: Sequence[str], references: Sequence[str], hypotheses: Sequence[str],
                languages: Sequence[str]) -> dict:
    """One ``saraikit.quality.WerReport`` per language (each normalised by its own rules)."""
    from saraikit.quality.wer import wer_report

    if not len(ids) == len(references) == len(hypotheses) == len(languages):
        raise DataError(f"wer_reports: {len(ids)} ids, {len(references)} references, {len(hypotheses)} hypotheses "
                        f"and {len(languages)} languages; they must line up")
    reports = {}
    for language in dict.fromkeys(languages):
        keep = [i for i, lang in enumerate(languages) if lang == language]
        reports[language] = wer_report([references[i] for i in keep], [hypotheses[i] for i in keep],
                                       [ids[i] for i in keep], language)
    return reports


def wer_table(reports: Mapping[str, Mapping[str, Any]], baseline: str = "fp32") -> pd.DataFrame:
    """One row per (candidate, dataset): WER with CI and the paired difference to ``baseline``, in points.

    ``reports`` maps a candidate name to {dataset: WerReport}; the baseline
    must cover every dataset a candidate has."""
    from saraikit.quality.wer import paired_wer_difference

    if baseline not in reports:
        raise DataError(f"wer_table: no reports for the baseline {baseline!r}; candidates: {sorted(reports)}")
    rows = []
    for name, by_dataset in reports.items():
        for dataset, report in by_dataset.items():
            if dataset not in reports[baseline]:
                raise DataError(f"wer_table: the baseline {baseline!r} has no report for dataset {dataset!r}")
            diff = paired_wer_difference(reports[baseline][dataset], report)
            rows.append({"candidate": name, "dataset": dataset, "n": report.n, "words": report.n_words,
                         "wer_pct": 100 * report.wer, "wer_ci_low": 100 * report.wer_ci.low,
                         "wer_ci_high": 100 * report.wer_ci.high, "delta_wer_pp": 100 * diff.diff,
                         "delta_ci_low": 100 * diff.ci_low, "delta_ci_high": 100 * diff.ci_high})
    return pd.DataFrame(rows, columns=["candidate", "dataset", "n", "words", "wer_pct", "wer_ci_low", "wer_ci_high",
                                       "delta_wer_pp", "delta_ci_low", "delta_ci_high"])


# --- the recommendation -----------------------------------------------------------


@dataclass(frozen=True)
class QualityBudget:
    """How much quality an INT8 variant may lose against FP32; a None threshold is not applied."""

    max_wer_increase_pp: float = 1.0  # WER(variant) - WER(FP32), percentage points, on every dataset
    min_cosine: float | None = 0.95  # mean cosine of the outputs over held-out feeds
    min_snr_db: float | None = 10.0  # mean SNR of the outputs over held-out feeds, dB

    def __post_init__(self) -> None:
        for key in ("max_wer_increase_pp", "min_cosine", "min_snr_db"):
            value = getattr(self, key)
            if value is None and key != "max_wer_increase_pp":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ConfigError(f"QualityBudget.{key}: expected a finite number, got {value!r}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"QualityBudget.min_cosine: expected a value in [-1, 1], got {self.min_cosine!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "QualityBudget":
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ConfigError(f"QualityBudget: unknown key(s) {unknown}; valid keys: {', '.join(sorted(valid))}")
        return cls(**values)


@dataclass
class Recommendation:
    model: str
    variant: str | None  # None: keep FP32
    message: str
    table: pd.DataFrame  # the input rows plus "decision" and "why"


ROLES = {
    "baseline": "FP32 baseline",
    "variant": "",
    "reference": "another engine, for comparison",
    "control": "FP32 measured again after the variants: a ratio away from 1 means the machine's speed drifted",
}
"""Roles of the rows ``recommend`` reads; only variants are judged."""

RECOMMEND_COLUMNS = ("candidate", "role", "status", "reason", "p50_ms", "ratio", "ratio_ci_low", "ratio_ci_high",
                     "verdict", "cosine", "snr_db", "length_diff", "max_delta_wer_pp")


def _rejections_before_wer(row, budget: QualityBudget) -> list[str]:
    """Reasons that reject a variant whatever its WER: slower than FP32, or fidelity below the budget."""
    reasons = []
    if row.verdict == "slower":
        interval = f"CI {row.ratio_ci_low:.2f}-{row.ratio_ci_high:.2f}"
        reasons.append(f"slower than FP32 (P50 ratio {row.ratio:.2f}, {interval})")
    comparable = pd.notna(row.length_diff) and row.length_diff == 0
    if comparable and budget.min_cosine is not None and not row.cosine >= budget.min_cosine:
        reasons.append(f"cosine {row.cosine:.4f} < {budget.min_cosine:g}")
    if comparable and budget.min_snr_db is not None and not row.snr_db >= budget.min_snr_db:
        reasons.append(f"SNR {row.snr_db:.1f} dB < {budget.min_snr_db:g} dB")
    return reasons


def _rejections(row, budget: QualityBudget) -> list[str]:
    reasons = _rejections_before_wer(row, budget)
    if pd.isna(row.max_delta_wer_pp):
        reasons.append("WER not measured" + (" (already rejected)" if reasons else ""))
    elif row.max_delta_wer_pp > budget.max_wer_increase_pp:
        reasons.append(f"WER +{row.max_delta_wer_pp:.1f} pp > budget {budget.max_wer_increase_pp:g} pp")
    return reasons


PRESCREEN_COLUMNS = ("role", "status", "ratio", "ratio_ci_low", "ratio_ci_high", "verdict", "cosine", "snr_db",
                     "length_diff")


def prescreen(table: pd.DataFrame, budget: QualityBudget) -> pd.Series:
    """Per row, why an ok variant is already rejected before its task metric ("" when it is not).

    The task metric (WER) is the slow measurement; a variant that the rule
    rejects for speed or fidelity need not be transcribed to be rejected."""
    missing = [c for c in PRESCREEN_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"prescreen: the table lacks column(s) {missing}")
    reasons = [
        "; ".join(_rejections_before_wer(row, budget)) if row.role == "variant" and row.status == "ok" else ""
        for row in table.itertuples(index=False)
    ]
    return pd.Series(reasons, index=table.index, dtype=object)


def _accepted_why(row) -> str:
    speed = {"faster": "faster than FP32", "no significant difference": "not significantly faster than FP32"}
    text = f"{speed.get(row.verdict, row.verdict)} (P50 ratio {row.ratio:.2f}); within the quality budget"
    if not (pd.notna(row.length_diff) and row.length_diff == 0):
        text += " (output length changes: judged on WER only)"
    return text


def recommend(table: pd.DataFrame, budget: QualityBudget, model: str) -> Recommendation:
    """Accept or reject every candidate of one model and pick the fastest accepted one (see the rule above).

    ``table`` needs :data:`RECOMMEND_COLUMNS`; ``role`` is one of :data:`ROLES`;
    ``verdict`` comes from ``saraikit.stats.compare`` against the baseline."""
    missing = [c for c in RECOMMEND_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"recommend: the table lacks column(s) {missing}")
    roles = set(table["role"])
    if not roles <= set(ROLES) or list(table["role"]).count("baseline") != 1:
        raise DataError(f"recommend: roles must be baseline (exactly one), {', '.join(list(ROLES)[1:])}; "
                        f"got {sorted(roles)}")
    decisions, whys = [], []
    for row in table.itertuples(index=False):
        if row.role != "variant":
            decision, why = row.role, ROLES[row.role]
        elif row.status != "ok":
            decision, why = row.status, row.reason or ""
        else:
            reasons = _rejections(row, budget)
            decision, why = ("rejected", "; ".join(reasons)) if reasons else ("accepted", _accepted_why(row))
        decisions.append(decision)
        whys.append(why)
    out = table.assign(decision=decisions, why=whys)
    winners = out[(out["decision"] == "accepted") & (out["verdict"] == "faster")].sort_values("p50_ms")
    if winners.empty:
        n_accepted = int((out["decision"] == "accepted").sum())
        message = (f"No INT8 variant of {model} is faster than FP32 on this CPU; keep FP32"
                   + (f" ({n_accepted} accepted variant(s) only save file size)." if n_accepted else "."))
        return Recommendation(model, None, message, out)
    best = winners.iloc[0]
    out.loc[out["candidate"] == best["candidate"], "decision"] = "recommended"
    message = (f"Recommended for {model}: {best['candidate']}, P50 {best['p50_ms']:.1f} ms, "
               f"{best['ratio']:.2f}x FP32 (CI {best['ratio_ci_low']:.2f}-{best['ratio_ci_high']:.2f}), "
               "within the quality budget.")
    return Recommendation(model, str(best["candidate"]), message, out)


# --- table rows -------------------------------------------------------------------


def candidates(fp32_path: str | Path, frame: pd.DataFrame) -> dict[str, Path]:
    """``{"fp32": fp32_path, <variant>: path}`` for the ok rows of a :func:`quantize_all` frame, FP32 first."""
    ok = frame[frame["ok"].astype(bool)]
    return {"fp32": Path(fp32_path), **{row.name: Path(row.path) for row in ok.itertuples(index=False)}}


def latency_row(outcome, baseline_samples: Sequence[float] | None) -> dict:
    """P50 with its CI, load time and the comparison with FP32 from a ``saraikit.bench.BenchOutcome``.

    ``baseline_samples`` None means this is the baseline itself (verdict "baseline")."""
    from saraikit.core import stats

    if not outcome.ok:
        return {"status": "failed", "reason": f"latency: {outcome.error}", "verdict": "failed",
                "trial_id": outcome.trial_id}
    summary, samples = outcome.summary, outcome.raw["samples_ms"]
    row = {"status": "ok", "reason": None, "n": summary.n, "load_s": outcome.raw["load_s"], "p50_ms": summary.p50,
           "p50_ci_low": summary.p50_ci_low, "p50_ci_high": summary.p50_ci_high, "trial_id": outcome.trial_id}
    if baseline_samples is None:
        return {**row, "ratio": 1.0, "ratio_ci_low": 1.0, "ratio_ci_high": 1.0, "verdict": "baseline"}
    comparison = stats.compare(baseline_samples, samples)
    return {**row, "ratio": comparison.ratio, "ratio_ci_low": comparison.ci_low, "ratio_ci_high": comparison.ci_high,
            "verdict": comparison.verdict, "p_value": comparison.p_value}
