"""Which grid-search figures become KPI rows (02_grid_search), declared once.

The best configuration's P50 is recorded with the hierarchical CI over its
processes, and points at the trials (one per process) that measured it in
this run. A reused trial is still a trial of this run (it names the run it
was measured in), so the KPI row shows where its figure came from.

The adaptive search runs before and after the exhaustive one of the same run
and is judged against it (:func:`record_adaptive`): ``adaptive_time_ratio``
(mean adaptive wall time / exhaustive wall time) and ``adaptive_gap_pct`` (how
far the exhaustive P50 of the configuration an adaptive search picked lies
above the exhaustive best's; the worse of the two). Both are derived figures
without an interval (two searches against one), so they are shown, never
judged pass/fail; their source trials are every trial of all searches in
this run. The goal (within 3% in at most 40% of the time)
is stated by the notebook beside them.
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


def search_trials(store: ResultsStore, run_id: str, experiment: str) -> list[int]:
    """Every trial of one search (experiment) in this run, ok or failed."""
    return [int(t) for t in store.trials(experiment=experiment, run_id=run_id)["trial_id"]]


def record_adaptive(store: ResultsStore, run_id: str, exhaustive_experiment: str, adaptive_experiments: list[str],
                    time_ratio: float, gap_pct: float, strategy: str, model: str, model_sha256: str | None,
                    inputs: str, n_configs: int) -> tuple[int, int]:
    """The two KPI rows of the adaptive searches against the exhaustive one, measured in the same run.

    ``adaptive_experiments``: one per adaptive search (run before and after the exhaustive one,
    :func:`saraikit.experiments.adaptive.bracket`); ``time_ratio`` is their mean wall time over the
    exhaustive one's, ``gap_pct`` the worse of their winners' gaps.
    """
    sources = search_trials(store, run_id, exhaustive_experiment)
    for experiment in adaptive_experiments:
        sources += search_trials(store, run_id, experiment)
    common = dict(dataset=f"{inputs} inputs, {n_configs} configurations", model_name=model,
                  model_sha256=model_sha256, provenance="derived", source_trials=sources)
    n = len(adaptive_experiments)
    ratio_id = record_kpi(store, run_id, "adaptive_time_ratio", time_ratio, n=n,
                          method=f"adaptive search ({strategy}) mean wall time of {n} searches (before and after the "
                                 "exhaustive one) / exhaustive wall time, same run, same grid", **common)
    gap_id = record_kpi(store, run_id, "adaptive_gap_pct", gap_pct, n=n,
                        method=f"the worse of {n} adaptive winners ({strategy}) judged by its exhaustive P50 against "
                               "the exhaustive best", **common)
    return ratio_id, gap_id
