"""Quantization recipes (:class:`Variant`), the standard and named sets, and the constants they check against.

Decisions
---------
- ORT does the quantizing; a Variant only chooses parameters. Parameter
  names follow ORT 1.31's ``quantize_dynamic`` / ``quantize_static``.
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
- ``extra_options`` keys are checked against :data:`KNOWN_EXTRA_OPTIONS`
  (the keys ORT 1.31 reads) because ORT ignores unknown keys silently.
- A variant's name becomes part of a file name, so it is restricted to
  letters, digits, ``.``, ``_`` and ``-``.
- Piper voices draw random noise scaled by ``scales[0]`` (noise_scale) and
  ``scales[2]`` (noise_w): with the voice's default scales two FP32 runs
  differ, even in length; with :data:`PIPER_DETERMINISTIC_SCALES` they are
  bit-identical (setting only one of the two to 0 is not enough). Fidelity
  against FP32 must use these scales.
- Quantizing Piper's text encoder (``/enc_p/``) or duration predictor
  (``/dp/``) changes the predicted phoneme durations, hence the audio length
  and alignment, and waveform cosine against FP32 then says little.
  :data:`PIPER_KEEP_LENGTH` keeps :data:`PIPER_LENGTH_PATH` in FP32 so the
  waveform stays comparable; full-model variants are judged on
  length-insensitive measures (ASR of the output, DNSMOS). Nearly all of a
  Piper voice's weights are Conv weights, so excluding Conv leaves almost
  nothing to quantize.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from saraikit.core.config import StrictConfig
from saraikit.core.errors import ConfigError

METHODS = ("dynamic", "static")
QUANT_TYPES = ("QInt8", "QUInt8")
QUANT_FORMATS = ("QDQ", "QOperator")
CALIBRATIONS = ("MinMax", "Entropy", "Percentile")
HISTOGRAM_CALIBRATIONS = ("Entropy", "Percentile")

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
class Variant(StrictConfig):
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


    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """``"quant-<12 hex>"``: stable across processes, for results rows."""
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return f"quant-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def ort_arguments(variant: Variant, nodes_to_exclude: list[str], model_input, model_output) -> dict[str, Any]:
    """The keywords ``quantize_dynamic`` and ``quantize_static`` share, from a variant (``nodes_to_exclude`` is
    :func:`saraikit.engines.quant_graph.excluded_nodes`: ORT has no op-type exclusion of its own)."""
    from onnxruntime.quantization import QuantType

    options = dict(variant.extra_options)  # a copy: ORT adds keys to the dict it is given
    if variant.calibration in HISTOGRAM_CALIBRATIONS:
        # One feed per collect call: ORT stacks each call's tensors with np.asarray, which fails when
        # feeds of different lengths give intermediate tensors of different shapes; histograms merge across calls.
        options.setdefault("CalibStridedMinMax", 1)
    return dict(
        model_input=str(model_input),
        model_output=str(model_output),
        op_types_to_quantize=list(variant.op_types_to_quantize or []),
        per_channel=variant.per_channel,
        reduce_range=variant.reduce_range,
        weight_type=QuantType[variant.weight_type],
        nodes_to_exclude=list(nodes_to_exclude),
        extra_options=options,
    )


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
