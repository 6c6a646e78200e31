"""The KPI ledger: the project's key figures per hardware target, each with its evidence.

A KPI figure is a row in the results database (experiment ``kpi``) written by
the notebook that measured it, with value, confidence interval, n, dataset,
method, model sha256, run id and provenance (measured / derived /
estimated), plus the trial ids of the measurements it came from. The ledger
is read back from those rows only: nothing is shown as measured unless a row
backs it, and a KPI nobody measured is listed as ``missing``.

The seeds' own claims (``SEED_CLAIMS``) are kept as constants with their
source and shown beside the measurements, always labelled ``estimated`` or
``projected`` as the seeds themselves admitted (or should have).

Decisions:
- A KPI is identified by (kpi, model, dataset) and has a mode: WER of
  whisper-base on the Spanish prompts and on LibriVox are two KPIs, and a
  quick run's figure never stands in for a full run's.
- Every KPI row names the trials it came from (``source_trials``); a row with
  none is refused. Derived figures (a projection, a ratio, a sum) have KPI
  names of their own and provenance ``derived``; they never share a name with
  the measured figure they resemble.
- The ledger shows, per KPI, the newest full-run row of the target; a KPI
  only a quick run measured is shown from that run, labelled ``quick``.
  ``history`` keeps every row for regression checks (like with like).
- Targets are parameters (``DEFAULT_TARGETS``), judged by
  :func:`saraikit.core.verdict.judge_or_not`: pass / fail / inconclusive from
  the confidence interval, and never a verdict for a figure without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from saraikit.core.errors import ConfigError
from saraikit.core.io import atomic_write_yaml
from saraikit.core.store import Figure, ResultsStore, Trial
from saraikit.core.verdict import judge_or_not

EXPERIMENT = "kpi"


@dataclass(frozen=True)
class KpiDef:
    name: str
    label: str
    unit: str
    better: str  # "lower" or "higher"


KPIS = {k.name: k for k in [
    KpiDef("audio_path_p50_ms", "Audio-only path (STT + TTS first audio) P50", "ms", "lower"),
    KpiDef("v2v_ttfa_p50_ms", "Voice-to-voice time to first audio P50", "ms", "lower"),
    KpiDef("v2v_ttfa_projected_p50_ms", "Voice-to-voice time to first audio, projected (sum of stage medians)",
           "ms", "lower"),
    KpiDef("v2v_ttfa_p90_ms", "Voice-to-voice time to first audio P90", "ms", "lower"),
    KpiDef("v2v_last_audio_p50_ms", "End of speech to last audio P50", "ms", "lower"),
    KpiDef("stt_latency_p50_ms", "STT latency per utterance P50", "ms", "lower"),
    KpiDef("tts_first_audio_p50_ms", "TTS first sentence P50", "ms", "lower"),
    KpiDef("llm_ttft_p50_ms", "LLM time to first token P50", "ms", "lower"),
    KpiDef("llm_tg_tokens_per_s", "LLM generation (tg128)", "tokens/s", "higher"),
    KpiDef("llm_pp_tokens_per_s", "LLM prompt processing (pp512)", "tokens/s", "higher"),
    KpiDef("llm_load_s", "LLM load time", "s", "lower"),
    KpiDef("model_load_s", "Model load time", "s", "lower"),
    KpiDef("latency_p50_ms", "Model latency P50", "ms", "lower"),
    KpiDef("latency_p90_ms", "Model latency P90", "ms", "lower"),
    KpiDef("latency_p99_ms", "Model latency P99", "ms", "lower"),
    KpiDef("stack_rss_mib", "Loaded stack memory (RSS)", "MiB", "lower"),
    KpiDef("stack_pss_mib", "Loaded stack memory (PSS)", "MiB", "lower"),
    KpiDef("wer", "Word error rate (normalized)", "%", "lower"),
    KpiDef("cer", "Character error rate (normalized)", "%", "lower"),
    KpiDef("tts_intelligibility_wer", "TTS round-trip WER", "%", "lower"),
    KpiDef("predicted_mos", "Predicted MOS (DNSMOS, not human)", "1-5", "higher"),
    KpiDef("model_size_mb", "Model size", "MB", "lower"),
    KpiDef("adaptive_time_ratio",
           "Adaptive search wall time (mean of the searches before and after) / exhaustive wall time (same run)",
           "x", "lower"),
    KpiDef("adaptive_gap_pct", "Adaptive winner's exhaustive P50 above the exhaustive best's (the worse one)", "%",
           "lower"),
]}

# Targets are parameters; these defaults come from the seeds' goals.
DEFAULT_TARGETS = {
    "audio_path_p50_ms": 240.0,
    "v2v_ttfa_p50_ms": 500.0,
    "wer": 10.0,
    "tts_intelligibility_wer": 10.0,
    "predicted_mos": 3.0,
}

# What the seeds claimed, with the label they deserve.
SEED_CLAIMS = [
    {"kpi": "latency_p50_ms", "value": 260.9, "provenance": "estimated",
     "source": "seed 000: Qwen2.5-Omni INT8, 'validated' P50 from a single-config run on dummy inputs"},
    {"kpi": "latency_p99_ms", "value": 279.0, "provenance": "estimated",
     "source": "seed 000: P99 from 20 iterations (a P99 needs 662 samples)"},
    {"kpi": "wer", "value": 2.0, "provenance": "estimated", "source": "seed 000: 'WER ~2.0%*' (estimated, never measured)"},
    {"kpi": "predicted_mos", "value": 4.3, "provenance": "estimated",
     "source": "seed 000: 'MOS ~4.3*' (estimated, never measured; not even predicted)"},
    {"kpi": "v2v_ttfa_p50_ms", "value": 1189.0, "provenance": "estimated",
     "source": "seed 003: '~1189 ms projected' end to end, a sum of stage estimates"},
    {"kpi": "audio_path_p50_ms", "value": 120.0, "provenance": "estimated",
     "source": "seed 002: 'Latencia E2E (sin LLM) ~120ms' projection"},
]


def record_kpi(store: ResultsStore, run_id: str, kpi: str, value: float | None, n: int | None,
               ci: tuple[float, float] | None = None, dataset: str = "", method: str = "",
               model_name: str | None = None, model_sha256: str | None = None, provenance: str = "measured",
               source_trials: list[int] | None = None, unit: str | None = None, samples: list | None = None,
               reused_from_run: str | None = None) -> int:
    """Write one KPI row (with its evidence) into the results database."""
    if kpi not in KPIS:
        raise ConfigError(f"unknown KPI {kpi!r}; known: {sorted(KPIS)}")
    if not source_trials:
        raise ConfigError(f"KPI {kpi!r} ({model_name or ''} {dataset}) names no source trial: every KPI row must "
                          "point at the stored trials it was computed from")
    definition = KPIS[kpi]
    extra = {"ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "dataset": dataset,
             "method": method, "source_trials": [int(t) for t in source_trials],
             "reused_from_run": reused_from_run}
    trial = Trial(
        experiment=EXPERIMENT, config={"kpi": kpi, "model": model_name, "dataset": dataset},
        model_name=model_name, model_sha256=model_sha256, method={"description": method},
        samples=samples,
        figures=[Figure(kpi, None if value is None or not np.isfinite(value) else float(value),
                        unit or definition.unit, n=n, provenance=provenance, extra=extra)],
    )
    return store.record(run_id, trial)


def history(store: ResultsStore, target: str | None = None) -> pd.DataFrame:
    """Every KPI row, oldest first, flattened."""
    frame = store.results(experiment=EXPERIMENT, target=target)
    if frame.empty:
        return pd.DataFrame(columns=["target", "run_id", "kpi", "model", "dataset", "value", "unit", "n",
                                     "ci_low", "ci_high", "method", "provenance", "model_sha256", "trial_id",
                                     "mode", "source_trials", "reused_from_run", "created_at"])
    extra = frame["extra"].map(lambda e: json.loads(e) if e else {})
    return pd.DataFrame({
        "target": frame["target"], "run_id": frame["run_id"], "kpi": frame["metric"],
        "model": frame["model_name"].fillna(""), "dataset": extra.map(lambda e: e.get("dataset", "")),
        "value": frame["value"], "unit": frame["unit"], "n": frame["n"],
        "ci_low": extra.map(lambda e: e.get("ci_low")), "ci_high": extra.map(lambda e: e.get("ci_high")),
        "method": extra.map(lambda e: e.get("method", "")), "provenance": frame["provenance"],
        "model_sha256": frame["model_sha256"], "trial_id": frame["trial_id"], "mode": frame["mode"],
        "source_trials": extra.map(lambda e: e.get("source_trials", [])),
        "reused_from_run": extra.map(lambda e: e.get("reused_from_run")),
        "created_at": frame["created_at"],
    })


def _nan_to_none(x):
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else x


def verdict(kpi: str, value, ci_low, ci_high, target: float | None) -> str:
    """The KPI against its target (see :mod:`saraikit.core.verdict`): never a verdict without an interval."""
    return judge_or_not(_nan_to_none(value), _nan_to_none(ci_low), _nan_to_none(ci_high), _nan_to_none(target),
                        KPIS[kpi].better)


def ledger(store: ResultsStore, target: str, targets: dict | None = None, mode: str = "full") -> pd.DataFrame:
    """Per (kpi, model, dataset): the newest row of ``mode`` (else of any mode, labelled), with verdicts."""
    targets = {**DEFAULT_TARGETS, **(targets or {})}
    rows = history(store, target)
    if rows.empty:
        latest = rows
    else:
        rows = rows.assign(preferred=rows["mode"] == mode).sort_values(["preferred", "trial_id"])
        latest = rows.groupby(["kpi", "model", "dataset"], as_index=False).last().drop(columns="preferred")
    latest = latest.copy()
    latest["label"] = latest["kpi"].map(lambda k: KPIS[k].label)
    latest["target"] = latest["kpi"].map(lambda k: targets.get(k))
    latest["verdict"] = [verdict(r.kpi, r.value, r.ci_low, r.ci_high, r.target) for r in latest.itertuples()]
    claims = {c["kpi"]: c for c in SEED_CLAIMS}
    latest["seed_claim"] = latest["kpi"].map(
        lambda k: f"{claims[k]['value']:g} ({claims[k]['provenance']})" if k in claims else "")
    missing = [k for k in targets if k not in set(latest["kpi"])]
    extra_rows = pd.DataFrame([{"kpi": k, "label": KPIS[k].label, "unit": KPIS[k].unit, "target": targets[k],
                                "verdict": "missing", "provenance": "missing",
                                "seed_claim": (f"{claims[k]['value']:g} ({claims[k]['provenance']})"
                                               if k in claims else "")} for k in missing])
    columns = ["kpi", "label", "model", "dataset", "value", "unit", "ci_low", "ci_high", "n", "target",
               "verdict", "provenance", "mode", "method", "seed_claim", "model_sha256", "run_id", "reused_from_run",
               "source_trials"]
    combined = pd.concat([latest, extra_rows], ignore_index=True) if len(extra_rows) else latest
    return combined.reindex(columns=columns).sort_values(["kpi", "model", "dataset"], na_position="last",
                                                          ignore_index=True)


def export_yaml(ledger_frame: pd.DataFrame, path: Path, target: str) -> Path:
    """The seeds' ``config/sarai.yaml`` KPI block, but every value says where it came from."""
    entries = {}
    for row in ledger_frame.itertuples():
        key = "/".join(x for x in (row.kpi, row.model, row.dataset) if isinstance(x, str) and x)
        entries[key] = {
            "value": None if pd.isna(row.value) else round(float(row.value), 4), "unit": row.unit,
            "ci95": None if pd.isna(row.ci_low) else [round(float(row.ci_low), 4), round(float(row.ci_high), 4)],
            "n": None if pd.isna(row.n) else int(row.n), "provenance": row.provenance,
            "method": row.method if isinstance(row.method, str) else "",
            "model_sha256": row.model_sha256 if isinstance(row.model_sha256, str) else None,
            "run_id": row.run_id if isinstance(row.run_id, str) else None,
            "target": None if pd.isna(row.target) else float(row.target), "verdict": row.verdict,
            "mode": row.mode if isinstance(row.mode, str) else None,
            "reused_from_run": row.reused_from_run if isinstance(row.reused_from_run, str) else None,
        }
    data = {"target": target, "kpis": entries,
            "seed_claims": [{**c, "note": "claimed by the seeds, not measured here"} for c in SEED_CLAIMS]}
    return atomic_write_yaml(path, data)
