"""A search that pays for itself: warm trial processes, and an Optuna TPE sampler for large spaces.

The first round's adaptive search (successive halving over fresh processes)
took 70% of the exhaustive search's wall time and landed 9.9% from its best:
each trial paid for a fresh interpreter, its imports and the model load, so
dropping configurations early saved little. Two levers here:

- :func:`warm_measure`: a measure function for :mod:`saraikit.experiments.grid`
  whose trials run in a :class:`saraikit.core.warm.WarmProcess`: imports are
  paid once per round, a fresh ONNX Runtime session is built per
  configuration (what differs between configurations is per session), and the
  process is recycled at every new round, so each round is a new sample of
  the machine's state and the paired-by-round comparison stays valid. A
  configuration with process-wide settings (an environment arena:
  ``OrtConfig.uses_env_arena``) still gets a fresh process of its own.
  Successive halving runs on top of it unchanged.
- :func:`tpe_search`: Optuna's TPE sampler proposes ``n_trials``
  configurations of a grid (one process each, round 1, a proposal already
  measured is answered from memory), then the ``finalists`` best get
  ``final_rounds`` more rounds interleaved with a longer plan; the winner is
  the finalist with the lowest median, as in successive halving. For spaces
  of hundreds of configurations, where measuring each once is already too
  long.
- :func:`bracket`: the adaptive search runs twice, before and after the
  exhaustive one (A B A), so a change of the machine's load between the two
  strategies does not decide their time ratio.

Every trial is stored as the grid's trials are (one per process), with
``method.process`` saying ``warm`` or ``fresh``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from saraikit.core.errors import ConfigError
from saraikit.core.trials import run_isolated
from saraikit.core.warm import WarmProcess
from saraikit.engines.ort import OrtConfig
from saraikit.experiments.bench import outcome_trial, single_outcome
from saraikit.experiments.grid import (Candidate, MeasureFn, MeasurementFailed, SearchResult, _Counter,
                                       _measure_into, _measure_round, config_label, successive_halving)
from saraikit.experiments.scenario import OnnxBench, run_onnx_bench


def warm_measure(model_path: str, store, run_id: str, model_name: str, model_sha256: str | None,
                 experiment: str = "grid_search", dims: dict | None = None, values: dict | None = None,
                 feeds: dict | None = None, timeout_s: float = 600.0, warm: WarmProcess | None = None) -> MeasureFn:
    """A measure function like :func:`grid.isolated_measure`, but one warm process per round.

    ``store=None`` measures without storing. The returned function has a
    ``close()`` that ends the warm process; ``measure.warm`` is the process.
    """
    process = warm or WarmProcess()
    state = {"round": None}

    def measure(config: dict, plan: dict):
        round_index = plan.get("round", 1)
        plan = {k: v for k, v in plan.items() if k != "round"}
        spec = OnnxBench(model_path=model_path, ort=config, plan=plan, dims=dims or {}, values=values or {},
                         feeds=feeds)
        fresh = OrtConfig.from_dict(config).uses_env_arena  # process-wide: never in a shared process
        if fresh:
            result = run_isolated(run_onnx_bench, spec, timeout_s=timeout_s)
        else:
            if state["round"] != round_index:
                process.restart()
                state["round"] = round_index
            result = process.run(run_onnx_bench, spec, timeout_s=timeout_s)
        outcome = single_outcome(spec, result.value if result.ok else None,
                                 None if result.ok else f"{result.status}: {result.reason()}", round_index)
        if store is not None:
            trial = outcome_trial(spec, outcome, experiment, model_name, model_sha256, True, round_index)
            trial.method["process"] = "fresh" if fresh else "warm (one process per round)"
            outcome.trial_id = store.record(run_id, trial)
        if not outcome.ok:
            raise MeasurementFailed(outcome.error)
        return outcome.raw["samples_ms"], False

    measure.close = process.close
    measure.warm = process
    return measure


def _suggest(trial, grid_spec: dict) -> dict:
    return {key: trial.suggest_categorical(key, list(choices)) for key, choices in grid_spec.items()}


def tpe_search(grid_spec: dict, measure: MeasureFn, plan: dict, n_trials: int = 12, finalists: int = 3,
               final_rounds: int = 2, growth: float = 2.0, seed: int = 0) -> SearchResult:
    """Optuna TPE over a grid spec, then the best ``finalists`` raced over ``final_rounds`` more rounds."""
    import optuna  # imported here: only this search needs it, and it takes a second to import

    if n_trials < 1 or finalists < 1 or final_rounds < 1:
        raise ConfigError(f"tpe_search needs n_trials, finalists and final_rounds >= 1, got {n_trials}, "
                          f"{finalists}, {final_rounds}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, n_trials // 3)))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    seen: dict[str, Candidate] = {}
    counter = _Counter()
    for _ in range(n_trials):
        trial = study.ask()
        config = _suggest(trial, grid_spec)
        label = config_label(config)
        if label not in seen:
            seen[label] = Candidate(config)
            _measure_into(seen[label], measure, {**plan, "round": 1}, counter)
        cand = seen[label]
        study.tell(trial, math.inf if cand.failed else cand.median)
    measured = sorted((c for c in seen.values() if not c.failed), key=lambda c: c.median)
    for cand in measured[finalists:]:
        cand.dropped_in_round = 1
        cand.drop_reason = f"not among the {finalists} best TPE proposals after round 1 (one process each)"
    alive = measured[:finalists]
    final_plan = dict(plan)
    for round_no in range(2, final_rounds + 2):
        final_plan["min_iterations"] = int(math.ceil(final_plan.get("min_iterations", 10) * growth))
        final_plan["min_duration_s"] = final_plan.get("min_duration_s", 0.0) * growth
        _measure_round(alive, measure, {**final_plan, "round": round_no}, counter)
        alive = [c for c in alive if not c.failed]
    return SearchResult("tpe", list(seen.values()), time.perf_counter() - start, counter.run, counter.reused)


def gap_and_ratio(adaptive: SearchResult, exhaustive: SearchResult) -> tuple[float, float, Candidate]:
    """``(gap %, time ratio, same configuration in exhaustive)``: the adaptive winner judged by exhaustive's figures.

    The gap is how far the exhaustive P50 (median of all its samples) of the
    configuration the adaptive search picked lies from the exhaustive best's,
    in percent; the ratio is adaptive wall time / exhaustive wall time.
    """
    by_label = {config_label(c.config): c for c in exhaustive.candidates}
    winner = adaptive.best()
    same = by_label.get(config_label(winner.config))
    if same is None or not same.processes:
        raise ConfigError(f"the adaptive winner {config_label(winner.config)} was not measured by the exhaustive "
                          "search: run both on the same grid")
    gap = (float(np.median(same.samples)) / exhaustive.best().median - 1) * 100
    return gap, adaptive.wall_s / exhaustive.wall_s, same


def run_adaptive(kind: str, configs: list[dict], grid_spec: dict, measure: MeasureFn, first_plan: dict,
                 processes: int, tpe_trials: int = 12, keep_fraction: float = 0.5) -> SearchResult:
    """One adaptive search of ``kind`` ("halving" or "tpe") with ``measure``, which is closed afterwards.

    ``keep_fraction``: the share of configurations successive halving keeps after each round."""
    if kind not in ("halving", "tpe"):
        raise ConfigError(f"adaptive must be 'halving' or 'tpe', got {kind!r}")
    try:
        if kind == "tpe":
            return tpe_search(grid_spec, measure, first_plan, n_trials=tpe_trials)
        return successive_halving(configs, measure, first_plan, growth=2.0, keep_fraction=keep_fraction,
                                  max_rounds=max(2, processes + 1))
    finally:
        getattr(measure, "close", lambda: None)()


@dataclass
class Bracket:
    """Adaptive searches run before and after the exhaustive one (A B A), judged against it.

    A load change during the session hits an adaptive search on one side or
    the other, never only the exhaustive one: the time ratio is the mean
    adaptive wall time over the exhaustive wall time, and the gap is the
    worse of the adaptive winners' gaps (a pass needs both within it).
    """

    table: pd.DataFrame  # one row per adaptive search: when, wall_s, time_ratio, winner, gap_pct
    time_ratio: float
    gap_pct: float


def bracket(runs: list[tuple[str, SearchResult]], exhaustive: SearchResult) -> Bracket:
    rows = []
    for when, result in runs:
        gap, ratio, _ = gap_and_ratio(result, exhaustive)
        rows.append({"search": when, "wall_s": result.wall_s, "trials": result.trials_run, "time_ratio": ratio,
                     "winner": config_label(result.best().config), "gap_pct": gap})
    table = pd.DataFrame(rows)
    mean_wall = float(table["wall_s"].mean())
    return Bracket(table, mean_wall / exhaustive.wall_s, float(table["gap_pct"].max()))
