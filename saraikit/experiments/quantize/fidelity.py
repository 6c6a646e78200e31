"""How far a quantized model's outputs drift from FP32 on the same feeds.

Decisions
---------
- Fidelity compares flattened float64 arrays on their common prefix (TTS
  audio length can change) and records the length difference. SNR is
  ``10 log10(sum(ref^2) / sum((ref - cand)^2))``: +inf when identical. A
  candidate's NaN is a result (the metrics become NaN and the worst-case
  aggregate shows it); a NaN or empty reference is a DataError. Mean SNR
  over feeds is the mean of the dB values.
- The FP32 reference runs twice on the first feed to check it is
  deterministic: a model that draws random numbers (Piper with noise scales
  above 0) would otherwise make the comparison measure its own noise.
- ``compare_many`` runs FP32 once per feed and every variant on the same
  feeds (``compare_outputs`` would re-run FP32 for each variant).
- Fidelity against FP32 is a valid quality measure only when the output
  keeps its length: a variant that changes Piper's phoneme durations shifts
  the waveform, and cosine / SNR then mostly measure the shift.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from saraikit.core.errors import DataError, ModelError
from saraikit.core.store import Figure
from saraikit.engines.ort import build_ort_session
from saraikit.experiments.quantize.calibration import check_feeds


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


def compare_many(
    fp32_path: str | Path,
    variant_paths: Mapping[str, str | Path],
    feeds_list: Sequence[Mapping[str, Any]],
    ort_config=None,
) -> dict[str, OutputComparison]:
    """:func:`compare_outputs` for several variants, FP32 run once per feed."""
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
