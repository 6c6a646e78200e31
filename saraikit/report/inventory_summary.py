"""Notebook 00's KPI rows and conclusions, from the inventory and the synthetic-input benchmark.

KPI rows: the P50 latency and the load time of every model benchmarked on
synthetic inputs, each pointing at its benchmark trial. Sentences are
computed from the tables the notebook shows; the harness overhead is judged
against its 1.02 goal by the one verdict rule.
"""

from __future__ import annotations

import pandas as pd

from saraikit.core.store import ResultsStore
from saraikit.core.verdict import judge_or_not
from saraikit.report.kpi import record_kpi

OVERHEAD_GOAL = 1.02


def record_synthetic_bench(store: ResultsStore, run_id: str, results: pd.DataFrame, samples: dict,
                           shas: dict[str, str], plan: dict) -> list[int]:
    ids = []
    for row in results[results["status"] == "ok"].itertuples():
        ids.append(record_kpi(store, run_id, "latency_p50_ms", row.p50_ms, n=row.n,
                              ci=(row.p50_ci_low, row.p50_ci_high), dataset="synthetic inputs",
                              method=f"isolated processes, plan {plan}", model_name=row.model,
                              model_sha256=shas.get(row.model), source_trials=[int(row.trial_id)],
                              samples=samples.get(row.model)))
        ids.append(record_kpi(store, run_id, "model_load_s", row.load_s, n=1, dataset="synthetic inputs",
                              method="one load in a fresh process", model_name=row.model,
                              model_sha256=shas.get(row.model), source_trials=[int(row.trial_id)]))
    return ids


def conclusion_lines(fingerprint, target: str, table: pd.DataFrame, compat: pd.DataFrame, results: pd.DataFrame,
                     overhead, overhead_model: str) -> list[str]:
    failures = compat[~compat["ok"]]
    lines = [f"- Target **{target}**: {fingerprint.cpu_model}, {fingerprint.logical_cores} logical cores, "
             f"ISA {', '.join(fingerprint.isa_flags) or 'none detected'}.",
             f"- {len(table)} models in `models/` ({int((table['source'] == 'user').sum())} added by the user); "
             f"{int(table['quantized'].fillna(False).astype(bool).sum())} already quantized."]
    broken = table[table["error"].astype(bool)]
    if len(broken):
        lines.append(f"- {len(broken)} model(s) could not be inspected: {', '.join(broken['name'])}.")
    lines.append(f"- Stack compatibility: {len(failures)} mismatch(es) in {len(compat)} checks"
                 + (": " + "; ".join(failures["message"]) if len(failures) else "."))
    for _, row in results[results["status"] == "ok"].sort_values("p50_ms").iterrows():
        lines.append(f"- {row['model']}: P50 {row['p50_ms']:.3g} ms ({row['p50_ci']}, n={row['n']}, synthetic "
                     f"inputs), P99 {row['p99']}, load {row['load_s']:.2f} s.")
    for _, row in results[results["status"] != "ok"].iterrows():
        lines.append(f"- {row['model']}: benchmark failed: {row['error']}")
    if overhead is not None:
        cmp = overhead.comparison
        verdict = judge_or_not(overhead.ratio, cmp.ci_low, cmp.ci_high, OVERHEAD_GOAL, "lower")
        lines.append(f"- Harness overhead on {overhead_model}: ratio {overhead.ratio:.4f} (95% CI {cmp.ci_low:.4f} "
                     f"to {cmp.ci_high:.4f}, {overhead.rounds} interleaved rounds of {overhead.calls_per_round} "
                     f"calls); against the {OVERHEAD_GOAL} goal: **{verdict}**.")
    return lines
