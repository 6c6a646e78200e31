"""Quantizing a model: :func:`preprocess`, :func:`quantize` one variant, :func:`quantize_all` variants.

Decisions
---------
- What is a caller error and what is a row: bad arguments (an invalid
  variant, a static variant without calibration data, calibration feeds that
  do not match the model's inputs, a pattern that matches nothing, a missing
  or unreadable model) raise ConfigError / ModelError before any work. What
  happens to a given model is a row: ``status`` ``"ok"``, ``"skipped"``
  (already quantized; no op this variant can quantize; ORT quantized no
  node) or ``"failed"`` (ORT raised, or its output failed
  ``onnx.checker.check_model``), with the reason in ``error``. A row that is
  not ok has no ``path``.
- Entropy and Percentile calibration get ``CalibStridedMinMax=1`` unless the
  variant sets it: ORT stacks the intermediate tensors of all feeds of one
  ``collect_data`` call with ``np.asarray``, which fails ("inhomogeneous
  shape") as soon as feeds differ in length, as speech and phoneme inputs
  do. With a stride of 1 each feed is collected alone and the histograms are
  merged (despite its name ORT applies the stride to every calibrator).
- Pre-processing (``preprocess``) is ORT's ``quant_pre_process``: symbolic
  shape inference, ORT basic graph optimisation, ONNX shape inference. The
  symbolic step needs sympy; without it the step is skipped and the note
  says so. If pre-processing fails the original model is used, with the
  reason in the note (never an exception: it is an optimisation).
  Pre-processing is not always a gain: ORT's optimiser fuses a 2-D
  MatMul + Add into Gemm, which dynamic quantization does not handle. So
  ``quantize_all`` quantizes the original model for a variant that would
  find fewer quantizable nodes in the pre-processed one (row ``source``).
- A model that is quantized already (Kokoro-82M ships as int8) is neither
  pre-processed nor quantized: ``quantize_all`` returns one "skipped" row per
  variant whose reason says "already quantized" with the evidence (its
  quantization nodes), so a notebook shows it beside the other models.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from saraikit.core.errors import ConfigError
from saraikit.core.progress import progress as progress_bar
from saraikit.engines.quant_graph import (
    already_quantized,
    check_model,
    excluded_nodes,
    existing_model,
    float_weight_ops,
    load_graph,
    nothing_to_quantize,
    op_histogram,
    quantizable_nodes,
)
from saraikit.engines.quant_variants import Variant, ort_arguments
from saraikit.experiments.quantize.calibration import CalibrationReader, check_feeds
from saraikit.experiments.quantize.staging import Staging, captured_logs, summarize_logs
from saraikit.models.inspect import inspect_model
from saraikit.models.onnx_file import is_quant_op


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
    source = existing_model(model_path)
    out_path = Path(out_path)
    notes = []
    symbolic = importlib.util.find_spec("sympy") is not None
    if not symbolic:
        notes.append("symbolic shape inference skipped: sympy is not installed (ONNX shape inference ran)")
    started = time.perf_counter()
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with Staging(out_path) as stage, captured_logs() as records:
            quant_pre_process(str(source), str(stage.path), skip_symbolic_shape=not symbolic)
            check_model(stage.path)
            stage.commit()
        notes += [r.getMessage().splitlines()[0] for r in records if r.levelno >= logging.ERROR][:3]
    except Exception as error:  # noqa: BLE001 - any failure means "use the original"
        note = f"pre-processing failed ({type(error).__name__}: {_first_line(error)}); using the original model"
        return Preprocessed(str(source), str(source), False, "; ".join([note] + notes), time.perf_counter() - started)
    return Preprocessed(str(source), str(out_path), True, "; ".join(notes), time.perf_counter() - started)


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
        quant = [f"{op} {n}" for op, n in sorted(self.node_types.items()) if is_quant_op(op)]
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
    source = existing_model(model_path)
    if Path(out_path).resolve() == source.resolve():
        raise ConfigError(f"quantize: out_path {out_path} is the source model; choose another file")
    reader = _reader_for(source, variant, calibration_reader)
    graph = load_graph(source)
    excluded = excluded_nodes(graph, variant)

    def row(status: str, error: str | None, seconds: float = 0.0, **extra) -> QuantResult:
        return QuantResult(variant, None, None, status == "ok", error, seconds, status=status, **extra)

    already = already_quantized(source)
    if already:
        return row("skipped", already)
    quantizable = quantizable_nodes(graph, variant, excluded)
    if not quantizable:
        return row("skipped", nothing_to_quantize(graph, variant, excluded))

    started = time.perf_counter()
    with Staging(Path(out_path)) as stage, captured_logs() as records:
        try:
            _run_ort(source, stage.path, variant, excluded, reader)
            check_model(stage.path)
            node_types = op_histogram(stage.path)
            float_ops = float_weight_ops(load_graph(stage.path))
        except Exception as error:  # noqa: BLE001 - every ORT failure becomes a row
            seconds = time.perf_counter() - started
            return row("failed", f"{type(error).__name__}: {_first_line(error)}", seconds,
                       warnings=summarize_logs(records))
        seconds = time.perf_counter() - started
        warnings = summarize_logs(records)
        if not any(is_quant_op(op) for op in node_types):
            return row("skipped", "ONNX Runtime quantized no node (its registry accepted none of the "
                       f"{len(quantizable)} candidate nodes)", seconds, node_types=node_types, warnings=warnings)
        size = stage.commit()
    return QuantResult(variant, str(out_path), size, True, None, seconds, node_types, "ok", warnings, float_ops)


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
    source = existing_model(model_path)
    variants = list(variants)
    _check_variant_names(variants)
    static = [v.name for v in variants if v.method == "static"]
    if static and calibration_feeds is None:
        raise ConfigError(f"static variants {static} need calibration_feeds (a list of {{input: array}} dicts)")
    if calibration_feeds is not None:
        check_feeds(source, calibration_feeds, what="calibration feed")
    graph = load_graph(source)
    for variant in variants:  # pattern typos fail before hours of work, not halfway
        excluded_nodes(graph, variant)

    out_dir = Path(out_dir)
    stem = source.name.removesuffix(".onnx")
    already = already_quantized(source)
    if already:  # e.g. Kokoro-82M int8: say so for every variant, write nothing
        return _already_quantized_frame(source, variants, already)
    prepared = preprocess(source, out_dir / f"{stem}.preprocessed.onnx")
    prepared_graph = load_graph(Path(prepared.path)) if prepared.ok else None
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


def _already_quantized_frame(source: Path, variants: list[Variant], reason: str) -> pd.DataFrame:
    """One "skipped" row per variant for a model that is quantized already (nothing pre-processed or written)."""
    rows = [_row(QuantResult(v, None, None, False, reason, 0.0, status="skipped"), 1, "original") for v in variants]
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
    frame.attrs["preprocess"] = dataclasses.asdict(
        Preprocessed(str(source), str(source), False, f"not pre-processed: {reason}", 0.0))
    return frame


def _prepared_serves(variant: Variant, original, prepared) -> bool:
    """False when pre-processing left this variant fewer nodes to quantize, or renamed an excluded node.

    ORT's optimiser fuses a 2-D MatMul + Add into Gemm, which dynamic
    quantization does not quantize: the original model is the better source then."""
    try:
        excluded = excluded_nodes(prepared, variant)
    except ConfigError:
        return False
    before = quantizable_nodes(original, variant, excluded_nodes(original, variant))
    return len(quantizable_nodes(prepared, variant, excluded)) >= len(before)


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

    common = ort_arguments(variant, excluded, source, output)
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or repr(error)
    return text.splitlines()[0][:300]
