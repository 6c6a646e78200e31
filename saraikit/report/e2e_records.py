"""Which end-to-end figures become KPI rows (05_e2e_latency), declared once.

Every row names its source trials: the utterance trials of the warm passes,
or the stack-load trial for memory. The projection (sum of the isolated stage
medians) is a derived figure under its own name, never under the measured one.
"""

from __future__ import annotations

import pandas as pd

from saraikit.core import stats
from saraikit.experiments.e2e import interval
from saraikit.core.store import ResultsStore
from saraikit.report.kpi import record_kpi

TIMINGS = {"v2v_ttfa_p50_ms": "ttfa_ms", "audio_path_p50_ms": "audio_path_ms", "stt_latency_p50_ms": "stt_ms"}


def utterance_set(rows: pd.DataFrame) -> str:
    ok = rows[rows["status"] == "ok"]
    return "2-4 s utterances, " + "+".join(sorted(ok["language"].unique()))


def record_e2e(store: ResultsStore, run_id: str, rows: pd.DataFrame, utterance_trials: list[int],
               load_trial_id: int, memory: dict, projected_ms: float | None, model: str | None = None) -> list[int]:
    """The KPI rows of one end-to-end run; returns their ids.

    The timings are recorded for all languages together and for each language
    on its own (dataset ``2-4 s utterances, es``): a stack meets the goal only
    if it meets it in every language.
    """
    ok = rows[rows["status"] == "ok"]
    dataset = utterance_set(rows)
    groups = [(dataset, ok)] + [(f"2-4 s utterances, {lang}", part) for lang, part in ok.groupby("language")]
    if ok["language"].nunique() < 2:
        groups = groups[1:]
    ids = []
    for group_dataset, part in groups:
        for name, column in TIMINGS.items():
            value, ci, n, how = interval(part, column)
            ids.append(record_kpi(store, run_id, name, value, n=n, ci=ci, dataset=group_dataset,
                                  method=f"end-to-end pipeline in a worker process, warm; CI: {how}",
                                  model_name=model, source_trials=utterance_trials,
                                  samples=part[column].astype(float).tolist()))
    ttfa = stats.summarize(ok["ttfa_ms"].astype(float).tolist())
    support = "supported" if ttfa.supported["p90"] else f"UNSUPPORTED (n={ttfa.n} < 64)"
    ids.append(record_kpi(store, run_id, "v2v_ttfa_p90_ms", ttfa.p90, n=ttfa.n, dataset=dataset, model_name=model,
                          method=f"end-to-end pipeline; P90 {support}", source_trials=utterance_trials))
    for name, key, what in (("stack_rss_mib", "rss_bytes", "RSS (includes the mapped GGUF)"),
                            ("stack_pss_mib", "pss_bytes", "PSS")):
        if memory.get(key) is not None:
            ids.append(record_kpi(store, run_id, name, memory[key] / 2**20, n=1, dataset="loaded stack",
                                  model_name=model, method=f"psutil {what} after loading every stage",
                                  source_trials=[load_trial_id]))
    if projected_ms is not None:
        ids.append(record_kpi(store, run_id, "v2v_ttfa_projected_p50_ms", projected_ms, n=None, dataset=dataset,
                              provenance="derived", model_name=model, source_trials=utterance_trials,
                              method="sum of the isolated stage medians + endpoint wait (a projection, not a measurement)"))
    return ids
