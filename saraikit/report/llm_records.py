"""Which LLM figures become KPI rows (04_llm_latency), declared once.

Every row names its source trials: the fresh-process load trial for the load
time, the en+es prompts trial for TTFT, and each llama-bench test's trial for
its tokens/s. TTFT is the median with its bootstrap CI; pp/tg tokens/s are
the mean of per-repetition rates with a Student-t CI (a bootstrap of five
repetitions is too narrow), provenance "derived" (tokens over measured time).
Datasets are plain names: the run's mode (quick or full) is stored with the
run, not in the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from saraikit.core import stats
from saraikit.core.errors import ConfigError
from saraikit.core.store import ResultsStore
from saraikit.experiments.llm.load import LoadedLlama, ResolvedGguf
from saraikit.experiments.llm.throughput import Throughput
from saraikit.report.kpi import record_kpi

BENCH_KPIS = {"pp": "llm_pp_tokens_per_s", "tg": "llm_tg_tokens_per_s"}


@dataclass(frozen=True)
class LlmTrialIds:
    """The stored trials the KPI rows point at."""

    load: int
    prompts: int  # the en+es prompts trial
    bench: dict[str, int]  # "pp"/"tg" -> its throughput trial

    def __post_init__(self) -> None:
        for name, trial_id in {"load": self.load, "prompts": self.prompts, **self.bench}.items():
            if not isinstance(trial_id, int) or isinstance(trial_id, bool):
                raise ConfigError(f"LlmTrialIds: the {name} trial id must be a stored trial's int id, got {trial_id!r}")

    def bench_trial(self, test: str) -> int:
        if test not in self.bench:
            raise ConfigError(f"no stored throughput trial for the {test!r} test: its KPI row would name no source")
        return self.bench[test]


def record_llm(store: ResultsStore, run_id: str, model: ResolvedGguf, measured: LoadedLlama, answers: pd.DataFrame,
               bench: Sequence[Throughput], trials: LlmTrialIds) -> list[int]:
    """The KPI rows of one notebook-04 run; returns their ids."""
    config = measured.config
    ids = [record_kpi(store, run_id, "llm_load_s", measured.load_s, n=1, dataset="load",
                      method=f"wall time of Llama(...) in a fresh process, use_mmap={config.use_mmap}, "
                             f"n_ctx={config.n_ctx}",
                      model_name=model.name, model_sha256=model.sha256, provenance="measured",
                      source_trials=[trials.load])]
    ttft = stats.summarize(answers["ttft_ms"])
    ids.append(record_kpi(store, run_id, "llm_ttft_p50_ms", ttft.p50, n=ttft.n, ci=(ttft.p50_ci_low, ttft.p50_ci_high),
                          dataset="prompts en+es", model_name=model.name, model_sha256=model.sha256,
                          provenance="measured",
                          method=f"{answers['prompt_kind'].iloc[0]} prompts, fresh context per run, greedy, "
                                 f"{config.n_threads} threads, n_ctx={config.n_ctx}, bootstrap CI of the median",
                          source_trials=[trials.prompts], samples=answers["ttft_ms"].tolist()))
    for result in bench:
        ids.append(record_kpi(store, run_id, BENCH_KPIS[result.test], result.mean_tokens_per_s, n=result.n,
                              ci=stats.mean_ci(result.tokens_per_s), dataset=f"llama-bench {result.name}",
                              model_name=model.name, model_sha256=model.sha256, provenance="derived",
                              method=f"tokens / measured wall time per repetition, mean with Student-t CI, "
                                     f"{result.n_threads} threads, {result.warmup} warmup",
                              source_trials=[trials.bench_trial(result.test)], samples=result.tokens_per_s))
    return ids
