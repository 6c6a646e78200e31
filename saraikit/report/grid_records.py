"""Which grid-search figures become KPI rows (02_grid_search), declared once.

The best configuration's P50 is recorded with the hierarchical CI over its
processes, and points at the trials (one per process) that measured it in
this run. A reused trial is still a trial of this run (it names the run it
was measured in), so the KPI row shows where its figure came from.
"""

from __future__ import annotations

import json

from saraikit.core import spread
from saraikit.core.store import ResultsStore
from saraikit.engines.ort import OrtConfig
from saraikit.experiments.grid import Candidate, config_label
from saraikit.report.kpi import record_kpi


def candidate_trials(store: ResultsStore, run_id: str, experiment: str, candidate: Candidate) -> list[int]:
    """The ids of this run's trials that measured ``candidate`` (one per process)."""
    wanted = OrtConfig.from_dict(candidate.config).to_dict()
    trials = store.trials(experiment=experiment, run_id=run_id)
    return [int(t.trial_id) for t in trials.itertuples()
            if t.status == "ok" and json.loads(t.config).get("ort") == wanted]


def record_best(store: ResultsStore, run_id: str, experiment: str, best: Candidate, inputs: str, model: str,
                model_sha256: str | None) -> int:
    summary = spread.summarize_processes(best.processes)
    trials = candidate_trials(store, run_id, experiment, best)
    reused = store.trials(run_id=run_id).set_index("trial_id").loc[trials, "reused_from"].notna().any() \
        if trials else False
    return record_kpi(store, run_id, "latency_p50_ms", summary.median, n=summary.n,
                      ci=(summary.ci_low, summary.ci_high), dataset=f"{inputs} inputs", model_name=model,
                      model_sha256=model_sha256, samples=best.samples, source_trials=trials,
                      method=f"grid search best ({config_label(best.config)}), {summary.k} fresh processes, "
                             "hierarchical bootstrap CI" + (", includes reused trials" if reused else ""))
