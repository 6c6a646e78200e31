"""Judging the candidates of a model: the quality budget, the accept / reject rule, and the rows it reads.

Decisions
---------
- The candidates of a model are its FP32 file ("fp32", the baseline) and
  every ok variant. Other rows have a role (:data:`ROLES`) and are never
  judged: CTranslate2's own compute types for a Whisper encoder
  ("reference": another engine, the competitor to beat) and FP32 measured
  again after the variants ("control": candidates are timed one after the
  other, so a drift of the machine's speed would otherwise pass for a
  speed-up or a slow-down).
- The rule (:func:`recommend`): a variant is rejected when it is slower than
  FP32 (the bootstrap CI of the P50 ratio lies above 1), when its fidelity
  is below the budget (mean cosine / mean SNR over held-out feeds, if
  comparable), when its WER increase over FP32 exceeds the budget on any
  dataset (point estimate, in percentage points; the paired CI is shown
  beside it), or when its task metric was not measured. Every reason that
  applies is listed. The recommended variant is the accepted one with the
  lowest P50 among those significantly faster than FP32 (ratio CI below 1);
  if none is, there is no recommendation and the message says so. A model
  without variants (already quantized, like Kokoro-82M int8) gets a message
  that says so, not "keep FP32".
- Fidelity is comparable only when the output keeps its length; a row whose
  length changes is judged on its task metric (WER) alone, and says so. A
  :class:`QualityBudget` threshold set to None is not applied at all.
- The fidelity gates are meant to catch gross breakage (an encoder so far
  off that the decoder loops to its token limit); the task metric judges
  the finer differences. :func:`prescreen` gives the speed / fidelity
  reasons alone, so the caller can skip transcribing variants that are
  rejected anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from saraikit.core import stats
from saraikit.core.config import StrictConfig
from saraikit.core.errors import ConfigError, DataError


@dataclass(frozen=True)
class QualityBudget(StrictConfig):
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
    """Accept or reject every candidate of one model and pick the fastest accepted one (see the module docstring).

    ``table`` needs :data:`RECOMMEND_COLUMNS`; ``role`` is one of :data:`ROLES`;
    ``verdict`` comes from ``saraikit.core.stats.compare`` against the baseline."""
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
    if "variant" not in roles:
        message = (f"No INT8 variant of {model} was made (the quantization rows say why, e.g. it is already "
                   "quantized): its baseline is measured as it is, nothing to recommend.")
        return Recommendation(model, None, message, out)
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
    """P50 with its CI, load time and the comparison with FP32 from a ``saraikit.experiments.bench.BenchOutcome``.

    ``baseline_samples`` None means this is the baseline itself (verdict "baseline")."""
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
