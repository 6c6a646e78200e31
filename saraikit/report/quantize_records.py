"""A quantization run's results as trials and KPI rows.

Decisions:

- One trial per candidate row of notebook 01 (experiment ``quantization``,
  beside the latency trials): its file size, fidelity figures, WER figures
  per dataset, and in ``method`` the decision, why, and the budget it was
  judged with. A failed row is stored as failed, with its reason.
- KPIs are written for FP32 and the recommended variant of each model only:
  ``model_size_mb``, ``latency_p50_ms`` and, for Whisper encoders, ``wer``
  per dataset. A Whisper encoder's KPI model name is ``<model>-encoder``
  (``.<variant>`` for a variant), the name notebook 06 reads back
  (:func:`saraikit.report.quality_records.recommended_int8`).
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from saraikit.core.store import Figure, ResultsStore, Trial
from saraikit.experiments.quantize.fidelity import OutputComparison, fidelity_figures
from saraikit.experiments.quantize.recommend import QualityBudget, Recommendation
from saraikit.engines.quant_variants import named_variants
from saraikit.models.catalog import sha256_file
from saraikit.report.kpi import record_kpi

WER_METHOD = "normalized WER, greedy decoding, ONNX encoder + CTranslate2 decoder"


def _figures(row, comparisons: Mapping[str, Mapping[str, OutputComparison]],
             reports: Mapping[str, Mapping[str, Mapping]]) -> list[Figure]:
    figures = [Figure("model_size", row.bytes, "bytes", n=1)] if pd.notna(row.bytes) else []
    if row.candidate in comparisons.get(row.model, {}):
        figures += fidelity_figures(comparisons[row.model][row.candidate])
    for dataset, report in reports.get(row.model, {}).get(row.candidate, {}).items():
        figures += [Figure(f.metric, f.value, f.unit, f.n, f.provenance, {**f.extra, "dataset": dataset})
                    for f in report.figures()]
    return figures


def record_candidates(store: ResultsStore, run_id: str, decided: pd.DataFrame,
                      comparisons: Mapping[str, Mapping[str, OutputComparison]],
                      reports: Mapping[str, Mapping[str, Mapping]], budget_of: Mapping[str, QualityBudget],
                      method: str) -> list[int]:
    """One ``quantization`` trial per row of ``decided``; returns the trial ids."""
    ids = []
    for row in decided.itertuples():
        ok = row.status == "ok"
        ids.append(store.record(run_id, Trial(
            experiment="quantization", model_name=f"{row.model}:{row.candidate}",
            config={"model": row.model, "candidate": row.candidate, "role": row.role,
                    "variant": named_variants()[row.candidate].to_dict() if row.role == "variant" else None},
            status="ok" if ok else "failed", error=None if ok else row.reason,
            method={"description": method, "decision": row.decision, "why": row.why,
                    "budget": vars(budget_of[row.model])},
            figures=_figures(row, comparisons, reports))))
    return ids


def kpi_label(model: str, kind: str, candidate: str) -> str:
    """``whisper-base-encoder``, ``whisper-base-encoder.dynamic-s8``, ``piper-...`` (FP32 has no suffix)."""
    base = f"{model}-encoder" if kind == "whisper-encoder" else model
    return base if candidate == "fp32" else f"{base}.{candidate}"


def record_kpis(store: ResultsStore, run_id: str, recommendations: Mapping[str, Recommendation],
                reports: Mapping[str, Mapping[str, Mapping]], kinds: Mapping[str, str], method: str) -> int:
    """KPI rows of FP32 and the recommended variant of each model; returns how many were written."""
    written = 0
    for name, rec in recommendations.items():
        for candidate in ["fp32"] + ([rec.variant] if rec.variant else []):
            row = rec.table[rec.table["candidate"] == candidate].iloc[0]
            common = {"model_name": kpi_label(name, kinds[name], candidate), "model_sha256": sha256_file(row.path),
                      "source_trials": [int(row.trial_id)]}
            record_kpi(store, run_id, "model_size_mb", row.bytes / 1e6, n=1, dataset="real inputs",
                       method="file size", **common)
            record_kpi(store, run_id, "latency_p50_ms", row.p50_ms, n=int(row.n), ci=(row.p50_ci_low, row.p50_ci_high),
                       dataset="real inputs", method=method, **common)
            written += 2
            wer_reports = reports.get(name, {}).get(candidate, {}) if kinds[name] == "whisper-encoder" else {}
            for dataset, report in wer_reports.items():
                record_kpi(store, run_id, "wer", 100 * report.wer, n=report.n,
                           ci=(100 * report.wer_ci.low, 100 * report.wer_ci.high), dataset=dataset,
                           method=WER_METHOD, **common)
                written += 1
    return written
