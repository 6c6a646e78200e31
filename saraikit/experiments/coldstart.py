"""Cold start versus steady state, and when warm-up pays off.

For k warm-up passes (0, 1, 2, 3 by default) a fresh process loads the model,
runs k warm-up inferences, then serves ``requests`` inferences, each timed.
Repeating this ``repeats`` times (each in its own process) gives, per k: load
time, warm-up cost, the latency of the first request, the steady-state P50
(requests after the first few) and the latency sequence.

Break-even (the seeds' question): warm-up is time spent before the first
request; with k passes it pays off after n requests when the latency it
removed from the first n requests, ``sum_{i<=n}(cold_i - warm_i)``, reaches
its cost. ``cold_i`` is the median i-th request latency with no warm-up,
``warm_i`` the same after k passes. If that never happens within the measured
requests, the break-even is reported as None ("not within N requests"): on a
CPU whose first inference is barely slower than the rest, warm-up never pays
for itself in compute, though it may still hide latency from the user when
it runs before they speak.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from saraikit.engines.ort import OrtConfig, build_ort_session, make_runner
from saraikit.experiments.synthetic import synthetic_inputs
from saraikit.core.timing import timed
from saraikit.core.trials import run_isolated


def cold_start_once(model_path: str, ort: dict, warmups: int, requests: int, feeds: dict | None = None,
                    dims: dict | None = None, values: dict | None = None) -> dict:
    """One fresh-process measurement: load, k warm-ups, then the request latencies (ms)."""
    config = OrtConfig.from_dict(ort)
    session, load_s = timed(lambda: build_ort_session(model_path, config))
    feeds = feeds if feeds is not None else synthetic_inputs(session, dims=dims or {}, values=values or {})
    runner = make_runner(session, feeds, config.use_io_binding)
    warmup_ms = [timed(runner)[1] * 1000 for _ in range(warmups)]
    request_ms = [timed(runner)[1] * 1000 for _ in range(requests)]
    return {"load_s": load_s, "warmup_ms": warmup_ms, "request_ms": request_ms}


def cold_start(model_path: str, ort: dict | None = None, warmups=(0, 1, 2, 3), requests: int = 10,
               repeats: int = 5, feeds: dict | None = None, dims: dict | None = None,
               values: dict | None = None, timeout_s: float = 600.0) -> pd.DataFrame:
    """Tidy rows (warmups, repeat, load_s, warmup_cost_ms, request index, latency_ms)."""
    rows = []
    for k in warmups:
        for rep in range(repeats):
            result = run_isolated(cold_start_once, model_path, ort or {}, k, requests, feeds=feeds, dims=dims,
                                  values=values, timeout_s=timeout_s)
            if not result.ok:
                rows.append({"warmups": k, "repeat": rep, "error": f"{result.status}: {result.reason()}"})
                continue
            value = result.value
            for i, latency in enumerate(value["request_ms"], start=1):
                rows.append({"warmups": k, "repeat": rep, "load_s": value["load_s"],
                             "warmup_cost_ms": float(np.sum(value["warmup_ms"])), "request": i,
                             "latency_ms": latency, "error": ""})
    return pd.DataFrame(rows)


def summarize_cold_start(tidy: pd.DataFrame, steady_from: int = 4) -> pd.DataFrame:
    """Per k: load, warm-up cost, first request, steady P50, and the break-even request count."""
    ok = tidy[tidy["error"] == ""]
    per_position = ok.groupby(["warmups", "request"])["latency_ms"].median().unstack("request")
    cold = per_position.loc[0] if 0 in per_position.index else None
    rows = []
    for k, sequence in per_position.iterrows():
        subset = ok[ok["warmups"] == k]
        cost = float(subset.groupby("repeat")["warmup_cost_ms"].first().median())
        steady = subset[subset["request"] >= steady_from]["latency_ms"]
        row = {"warmups": k, "repeats": subset["repeat"].nunique(), "load_s": float(subset["load_s"].median()),
               "warmup_cost_ms": cost, "first_request_ms": float(sequence.iloc[0]),
               "steady_p50_ms": float(steady.median()) if len(steady) else np.nan,
               "steady_n": int(len(steady))}
        row["break_even_requests"] = break_even(cold, sequence, cost) if cold is not None and k > 0 else None
        rows.append(row)
    return pd.DataFrame(rows)


def break_even(cold: pd.Series, warm: pd.Series, cost_ms: float) -> int | None:
    """Smallest n with sum_{i<=n}(cold_i - warm_i) >= cost, or None within the measured requests."""
    saved = np.cumsum(cold.to_numpy() - warm.to_numpy())
    reached = np.nonzero(saved >= cost_ms)[0]
    return int(reached[0]) + 1 if len(reached) else None
