"""The figures the LLM conclusions use: throughput tables, the best thread count, prompt-length fits.

Decisions:

- A thread count is called "best" only against the fewest-threads baseline
  with ``saraikit.core.stats.compare`` (ratio of median wall times,
  bootstrap CI).
- The mean tokens/s gets a Student-t interval (``stats.mean_ci``) because a
  percentile bootstrap of 5 repetitions is too narrow.
- Prompt processing is called linear in the prompt length when a
  least-squares line over every repetition explains at least ``min_r2`` of
  the variance, and the per-token cost at both ends is reported beside it
  (attention grows with the context, so it rises slowly even when the fit is
  good).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from saraikit.core import stats
from saraikit.core.errors import ConfigError, MeasurementError
from saraikit.experiments.llm.throughput import Throughput, compare_with_llama_cpp


def throughput_table(results: Sequence[Throughput], confidence: float = 0.95) -> pd.DataFrame:
    """One row per llama-bench test: mean ± std tokens/s, its CI, and the binding-vs-llama.cpp check."""
    rows = []
    for result in results:
        check = compare_with_llama_cpp(result)
        low, high = stats.mean_ci(result.tokens_per_s, confidence)
        rows.append({"test": result.name, "threads": f"{result.n_threads}/{result.n_threads_batch}",
                     "n": result.n, "tokens_per_s_mean": result.mean_tokens_per_s,
                     "tokens_per_s_std": result.std_tokens_per_s, "ci_low": low, "ci_high": high,
                     "binding_tokens_per_s": check.binding_tokens_per_s,
                     "llama_cpp_tokens_per_s": check.llama_tokens_per_s, "binding_ratio": check.ratio,
                     "within_tolerance": check.within_tolerance})
    return pd.DataFrame(rows)


def thread_comparison(sweep: pd.DataFrame) -> pd.DataFrame:
    """Each thread count of :func:`~saraikit.experiments.llm.sweeps.thread_sweep` against the fewest threads, per test.

    ``time_ratio`` is median wall time / the baseline's (below 1 = faster), with its
    bootstrap CI and verdict from :func:`saraikit.core.stats.compare`. ``is_best`` marks the
    highest mean tokens/s per test; ``best_is_significant`` says whether that count is
    significantly faster than the baseline (always False when the baseline is best).
    """
    ok = sweep[sweep["status"] == "ok"] if "status" in sweep else sweep.iloc[0:0]
    if ok.empty:
        raise MeasurementError("thread_comparison: the sweep has no successful rows")
    rows = []
    for kind, group in ok.groupby("kind", sort=False):
        group = group.sort_values("n_threads")
        baseline = group.iloc[0]
        best_threads = int(group.loc[group["tokens_per_s_mean"].idxmax(), "n_threads"])
        for row in group.itertuples():
            comparison = stats.compare(baseline["samples_ms"], row.samples_ms)
            rows.append({"kind": kind, "test": row.test, "n_threads": int(row.n_threads), "n": int(row.n),
                         "tokens_per_s_mean": row.tokens_per_s_mean, "tokens_per_s_std": row.tokens_per_s_std,
                         "baseline_threads": int(baseline["n_threads"]), "time_ratio": comparison.ratio,
                         "ci_low": comparison.ci_low, "ci_high": comparison.ci_high,
                         "p_value": comparison.p_value,
                         "verdict": "baseline" if row.Index == baseline.name else comparison.verdict,
                         "is_best": int(row.n_threads) == best_threads})
    frame = pd.DataFrame(rows)
    frame["best_is_significant"] = frame["is_best"] & (frame["verdict"] == "faster")
    return frame


def prompt_length_fit(context: pd.DataFrame, min_r2: float = 0.99) -> pd.DataFrame:
    """Per ``n_ctx``: least-squares line of prompt-processing time against prompt length.

    Fits every repetition's wall time of the ``pp`` rows of :func:`~saraikit.experiments.llm.sweeps.context_scaling`
    (scipy ``linregress``). ``linear`` is ``r2 >= min_r2`` with at least three lengths;
    ``ms_per_token_first``/``_last`` are the measured mean ms per prompt token at the
    shortest and longest length.
    """
    if not 0 < min_r2 <= 1:
        raise ConfigError(f"prompt_length_fit: min_r2 must be in (0, 1], got {min_r2!r}")
    pp = context[(context["status"] == "ok") & (context["kind"] == "pp")] if "kind" in context else context.iloc[0:0]
    if pp.empty:
        raise MeasurementError("prompt_length_fit: no successful prompt-processing rows")
    rows = []
    for size, group in pp.groupby("n_ctx"):
        group = group.sort_values("prompt_length")
        x = np.concatenate([[length] * len(samples) for length, samples in zip(group["prompt_length"],
                                                                              group["samples_ms"])])
        y = np.concatenate([np.asarray(samples, dtype=float) for samples in group["samples_ms"]])
        lengths = len(group)
        fit = sps.linregress(x, y) if lengths >= 2 else None
        r2 = fit.rvalue ** 2 if fit is not None else math.nan
        first, last = group.iloc[0], group.iloc[-1]
        rows.append({"n_ctx": int(size), "lengths": lengths, "n_samples": len(y),
                     "slope_ms_per_token": fit.slope if fit else math.nan,
                     "intercept_ms": fit.intercept if fit else math.nan, "r2": r2,
                     "ms_per_token_first": first["wall_ms_mean"] / first["prompt_length"],
                     "ms_per_token_last": last["wall_ms_mean"] / last["prompt_length"],
                     "shortest": int(first["prompt_length"]), "longest": int(last["prompt_length"]),
                     "linear": bool(lengths >= 3 and r2 >= min_r2)})
    return pd.DataFrame(rows)
