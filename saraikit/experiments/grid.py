"""Grid search over ONNX Runtime session options: exhaustive and adaptive, resumable on request.

A grid spec is a dict of lists over :class:`~saraikit.engines.ort.OrtConfig`
fields, e.g. ``{"graph_optimization_level": ["BASIC", "ALL"],
"intra_op_num_threads": [1, 2]}``; its cartesian product is the set of
configurations. Every configuration is measured by a *measure function*
``measure(config: dict, plan: dict) -> list[float]`` that runs ONE fresh
process and returns its latencies in ms; ``plan`` carries the round number.
In production that is :func:`isolated_measure`, which runs
:func:`saraikit.experiments.bench.bench_onnx` with one process and stores the
trial; tests inject synthetic timings.

Why rounds: the latency of a configuration moves from one process to the next
by more than the differences a grid looks for (see :mod:`saraikit.core.spread`).
So every configuration gets several processes, and the processes are
interleaved by rounds (round 1: A, B, C; round 2: A, B, C; ...): drift of the
machine hits all configurations of a round alike, and two configurations are
compared paired by round (:func:`saraikit.core.spread.compare_paired`, a
t-interval on the log ratios of process medians).

Strategies:

- ``exhaustive``: every configuration in ``processes`` rounds (default 3),
  the plan split over them. The ranking uses the median of all samples with
  its hierarchical CI; "vs best" and :meth:`SearchResult.equivalent_to_best`
  use the paired comparison with the best.
- ``successive_halving`` (racing): each round gives every surviving
  configuration one more process with a plan ``growth`` times longer. After
  round 1 the best ``keep_fraction`` by median survive (one process each: no
  significance claim); from round 2 on, configurations whose paired
  comparison with the leader is "slower" are dropped as well. It stops when
  one configuration is left or after ``max_rounds``.

Reuse is opt-in: by default a second search measures everything again. With
``reuse="matching"`` a trial whose identity (configuration, plan, round, model
sha256, input feeds, package versions, hardware, mode) matches a successful
trial of an earlier run reuses its samples and is stored as reused from that
run, so a search killed after k trials resumes with k done.

Decisions:
- The winner is the configuration with the lowest median; the "equivalent"
  set is every configuration whose paired comparison with it is not
  significant (or significantly faster).
- ``best_configs.yaml`` (per target) maps a model name to its best ORT config
  and the evidence (P50, CI, n, run id); it is merged and written atomically,
  so other models' entries survive.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from saraikit.core import spread, stats
from saraikit.core.errors import ConfigError
from saraikit.core.io import atomic_write_yaml
from saraikit.core.store import Trial, feeds_hash
from saraikit.engines.ort import OrtConfig
from saraikit.experiments.bench import DEFAULT_PROCESSES, OnnxBench, bench_onnx, split_plan, trial_key

MeasureFn = Callable[[dict, dict], list]
"""``measure(config, plan)``: the samples (ms) of ONE fresh process, or ``(samples, reused)``.

``plan`` is that process's timing plan plus ``"round"`` (1-based); a search
calls it once per round per configuration, rounds interleaved."""


def expand(grid: dict[str, list]) -> list[dict]:
    """Cartesian product of a grid spec; every configuration is validated as an OrtConfig."""
    if not grid:
        return [{}]
    bad = [k for k, v in grid.items() if not isinstance(v, (list, tuple)) or not v]
    if bad:
        raise ConfigError(f"grid values must be non-empty lists; check {bad}")
    keys = list(grid)
    configs = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    for config in configs:
        OrtConfig.from_dict(config)  # raises ConfigError naming the bad key or value
    return configs


def config_label(config: dict) -> str:
    short = {"graph_optimization_level": "opt", "intra_op_num_threads": "intra", "inter_op_num_threads": "inter",
             "execution_mode": "mode", "enable_cpu_mem_arena": "arena", "enable_mem_pattern": "mempat",
             "use_io_binding": "iobind", "arena_size": "arena_size"}
    if not config:
        return "ORT defaults"
    return " ".join(f"{short.get(k, k)}={v}" for k, v in config.items())


@dataclass
class Candidate:
    """One configuration of a search: its processes (one per round it ran), or why it stopped."""

    config: dict
    processes: list[spread.ProcessSamples] = field(default_factory=list)
    dropped_in_round: int | None = None
    drop_reason: str = ""
    failed: str | None = None

    @property
    def samples(self) -> list[float]:
        """Every sample of every process, in round order."""
        return spread.flatten(self.processes)

    @property
    def rounds(self) -> int:
        return len(self.processes)

    @property
    def median(self) -> float:
        return float(np.median(self.samples)) if self.processes else math.inf

    def spread_summary(self) -> spread.SpreadSummary:
        return spread.summarize_processes(self.processes)


def compare_by_round(baseline: Candidate, candidate: Candidate) -> spread.PairedComparison:
    """``candidate`` against ``baseline``, paired over the rounds both ran (a dropped one ran fewer)."""
    common = {p.round for p in baseline.processes} & {p.round for p in candidate.processes}
    return spread.compare_paired([p for p in baseline.processes if p.round in common],
                                 [p for p in candidate.processes if p.round in common])


@dataclass
class SearchResult:
    """The candidates of a search, how long it took, and how many trials ran or were reused."""

    strategy: str
    candidates: list[Candidate]
    wall_s: float
    trials_run: int
    trials_reused: int

    def _measured(self) -> list[Candidate]:
        return [c for c in self.candidates if c.processes and not c.failed]

    def table(self) -> pd.DataFrame:
        """Ranking with hierarchical CIs, the process spread and the paired verdict against :meth:`best`."""
        best = self.best() if self._measured() else None
        rows = []
        for c in self.candidates:
            row = {"config": config_label(c.config), **c.config, "rounds": c.rounds, "n": len(c.samples),
                   "status": "failed" if c.failed else ("dropped" if c.dropped_in_round else "finalist"),
                   "reason": c.failed or c.drop_reason}
            if c.processes and not c.failed:
                row.update(_figures_row(c, best))
            rows.append(row)
        frame = pd.DataFrame(rows)
        if "p50_ms" in frame:
            frame = frame.sort_values("p50_ms", na_position="last").reset_index(drop=True)
            frame.insert(0, "rank", range(1, len(frame) + 1))
        return frame

    def best(self) -> Candidate:
        ok = [c for c in self._measured() if c.dropped_in_round is None] or self._measured()
        if not ok:
            raise ConfigError("no configuration of the grid produced a measurement")
        return min(ok, key=lambda c: c.median)

    def equivalent_to_best(self) -> list[Candidate]:
        """The best, and every configuration whose paired comparison with it is not "slower".

        Paired over the rounds both ran; "insufficient samples" (fewer than 2
        common rounds) is no evidence of equivalence and is left out.
        """
        best = self.best()
        return [c for c in self._measured()
                if c is best or compare_by_round(best, c).verdict in ("no significant difference", "faster")]


def _figures_row(c: Candidate, best: Candidate) -> dict:
    s, sp = stats.summarize(c.samples), c.spread_summary()
    row = {"p50_ms": sp.median, "p50_ci_low": sp.ci_low, "p50_ci_high": sp.ci_high,
           "p90": stats.format_percentile(s, "p90"), "processes": sp.k, "process_spread": sp.spread_ratio,
           "unstable": sp.unstable}
    if c is best:
        return {**row, "ratio_to_best": 1.0, "ratio_ci_low": 1.0, "ratio_ci_high": 1.0, "vs_best": "best"}
    cmp = compare_by_round(best, c)
    return {**row, "ratio_to_best": cmp.ratio, "ratio_ci_low": cmp.ci_low, "ratio_ci_high": cmp.ci_high,
            "vs_best": cmp.verdict, "p_value": cmp.p_value}


def exhaustive(configs: list[dict], measure: MeasureFn, plan: dict,
               processes: int = DEFAULT_PROCESSES) -> SearchResult:
    """Every configuration in ``processes`` rounds, interleaved (A, B, C, then A, B, C, ...).

    The plan is split over the processes (:func:`saraikit.experiments.bench.split_plan`),
    so the measuring time per configuration stays that of the plan.
    """
    start = time.perf_counter()
    candidates = [Candidate(c) for c in configs]
    counter = _Counter()
    for round_no, process_plan in enumerate(split_plan(plan, processes), start=1):
        _measure_round(candidates, measure, {**process_plan, "round": round_no}, counter)
    return SearchResult("exhaustive", candidates, time.perf_counter() - start, counter.run, counter.reused)


def successive_halving(configs: list[dict], measure: MeasureFn, first_plan: dict, growth: float = 2.0,
                       keep_fraction: float = 0.5, max_rounds: int = 4) -> SearchResult:
    """Racing: one more process per surviving configuration each round; drop the slow ones; grow the plan.

    Round 1 keeps the best ``keep_fraction`` by median and makes no
    significance claim (one process each cannot separate a configuration from
    its process drift). From round 2 on, configurations whose paired
    comparison with the leader is "slower" are dropped first, then the best
    ``keep_fraction`` of the rest are kept.
    """
    if not 0 < keep_fraction < 1:
        raise ConfigError(f"keep_fraction must be between 0 and 1, got {keep_fraction}")
    start = time.perf_counter()
    candidates = [Candidate(c) for c in configs]
    alive = list(candidates)
    counter = _Counter()
    plan = dict(first_plan)
    for round_no in range(1, max_rounds + 1):
        _measure_round(alive, measure, {**plan, "round": round_no}, counter)
        alive = [c for c in alive if not c.failed]
        if len(alive) <= 1:
            break
        survivors = _drop_significantly_slower(alive, round_no) if round_no > 1 else list(alive)
        survivors.sort(key=lambda c: c.median)
        keep = max(1, math.ceil(len(alive) * keep_fraction))
        claim = " (one process each: no significance claim)" if round_no == 1 else ""
        for cand in survivors[keep:]:
            cand.dropped_in_round = round_no
            cand.drop_reason = f"not in the best {keep_fraction:.0%} by median after round {round_no}{claim}"
        alive = survivors[:keep]
        if len(alive) <= 1:
            break
        plan["min_iterations"] = int(math.ceil(plan.get("min_iterations", 10) * growth))
        plan["min_duration_s"] = plan.get("min_duration_s", 0.0) * growth
    return SearchResult("successive_halving", candidates, time.perf_counter() - start, counter.run, counter.reused)


def _drop_significantly_slower(alive: list[Candidate], round_no: int) -> list[Candidate]:
    leader = min(alive, key=lambda c: c.median)
    survivors = []
    for cand in alive:
        if cand is not leader and compare_by_round(leader, cand).verdict == "slower":
            cand.dropped_in_round = round_no
            cand.drop_reason = f"significantly slower than the leader (paired over {round_no} rounds)"
        else:
            survivors.append(cand)
    return survivors


@dataclass
class _Counter:
    run: int = 0
    reused: int = 0


def _measure_round(candidates: list[Candidate], measure: MeasureFn, plan: dict, counter: _Counter) -> None:
    """One process for every configuration still running, in order (the interleaving).

    A measure function with a ``many(configs, plan)`` attribute gets the whole
    round at once (a cluster runs it on several workers); it returns, per
    configuration, what ``measure`` would have returned or the
    :class:`MeasurementFailed` it would have raised.
    """
    running = [c for c in candidates if not c.failed]
    many = getattr(measure, "many", None)
    if many is None:
        for cand in running:
            _measure_into(cand, measure, plan, counter)
        return
    for cand, result in zip(running, many([c.config for c in running], plan)):
        _take(cand, result, plan, counter)


def _measure_into(cand: Candidate, measure: MeasureFn, plan: dict, counter: _Counter) -> None:
    try:
        result = measure(cand.config, plan)
    except MeasurementFailed as exc:
        result = exc
    _take(cand, result, plan, counter)


def _take(cand: Candidate, result, plan: dict, counter: _Counter) -> None:
    if isinstance(result, MeasurementFailed):
        cand.failed = str(result)
        counter.run += 1
        return
    samples, reused = unpack_measurement(result)
    cand.processes.append(spread.ProcessSamples(samples, plan["round"]))
    if reused:
        counter.reused += 1
    else:
        counter.run += 1


def unpack_measurement(result) -> tuple[list[float], bool]:
    """``(samples, reused)`` from what a measure function returned (a list, or a tuple of both)."""
    if isinstance(result, tuple):
        return list(result[0]), bool(result[1])
    return list(result), False


class MeasurementFailed(Exception):
    """A trial failed (crash, timeout, error); the configuration is recorded as failed."""


REUSE_CHOICES = ("none", "matching")


def isolated_measure(model_path: str, store, run_id: str, model_name: str, model_sha256: str | None,
                     target: str, experiment: str = "grid_search", dims: dict | None = None,
                     values: dict | None = None, feeds: dict | None = None, timeout_s: float = 600.0,
                     reuse: str = "none") -> MeasureFn:
    """A measure function: one fresh process per call, stored as the trial of that round.

    ``reuse="none"`` (the default) measures every call again. ``reuse="matching"``
    first looks for a successful trial of an earlier run with the same identity
    (configuration, round, model sha256, input feeds, package versions, hardware,
    mode: see :mod:`saraikit.core.store`); when one exists its samples are used
    and a new trial is stored in this run that names the original trial and run.
    ``store=None`` measures without storing (an A/A check must not reuse itself).
    ``target`` is kept for callers; the identity already holds the hardware.
    """
    if reuse not in REUSE_CHOICES:
        raise ConfigError(f"reuse must be one of {REUSE_CHOICES}, got {reuse!r}")

    def measure(config: dict, plan: dict):
        round_index = plan.get("round", 1)
        plan = {k: v for k, v in plan.items() if k != "round"}
        spec = OnnxBench(model_path=model_path, ort=config, plan=plan, dims=dims or {}, values=values or {},
                         feeds=feeds)
        if reuse == "matching" and store is not None:
            reused = _reuse(store, run_id, spec, round_index, experiment, model_name, model_sha256)
            if reused is not None:
                return reused, True
        outcome = bench_onnx(spec, store=store, run_id=run_id, experiment=experiment, model_name=model_name,
                             model_sha256=model_sha256, timeout_s=timeout_s, processes=1, round_index=round_index)
        if not outcome.ok:
            raise MeasurementFailed(outcome.error)
        return outcome.raw["samples_ms"], False

    return measure


def _reuse(store, run_id: str, spec: OnnxBench, round_index: int, experiment: str, model_name: str,
           model_sha256: str | None) -> list[float] | None:
    """The samples of a matching trial of an earlier run, recorded in this run as reused; None when none matches."""
    wanted = Trial(experiment=experiment, config={**spec.config(), "round": round_index},
                   config_key=trial_key(spec, round_index), model_name=model_name, model_sha256=model_sha256,
                   inputs_hash=feeds_hash(spec.feeds) if spec.feeds is not None else None)
    found = store.find_reusable(run_id, wanted)
    if found is None:
        return None
    wanted.samples, wanted.method = found["samples"], json.loads(found["method"] or "{}")
    store.record_reused(run_id, found, wanted)
    return list(found["samples"])


def heatmap_frame(table: pd.DataFrame, rows: str = "intra_op_num_threads",
                  columns: str = "graph_optimization_level") -> pd.DataFrame:
    """Best P50 for each (rows, columns) cell, over the other knobs."""
    ok = table.dropna(subset=["p50_ms"])
    if rows not in ok or columns not in ok:
        raise ConfigError(f"the grid has no {rows!r} or {columns!r} axis to draw")
    return ok.pivot_table(index=rows, columns=columns, values="p50_ms", aggfunc="min")


# --- best configs ----------------------------------------------------------------------------

def write_best_config(path: Path, model_name: str, config: dict, samples: list[float], run_id: str,
                      note: str = "", kind: str = "ort",
                      processes: list[spread.ProcessSamples] | None = None) -> dict:
    """Merge one best configuration into ``best_configs.yaml`` (atomic write).

    ``kind`` names what ``config`` holds: ``ort`` (validated as an OrtConfig) or
    any other plain mapping, e.g. ``threads`` for the pipeline's thread split.
    With ``processes`` (e.g. ``best.processes``) the CI is the hierarchical one
    over them and the entry records their count and spread; ``samples`` is
    then ignored.
    """
    path = Path(path)
    existing = yaml.safe_load(path.read_text()) if path.exists() else {}
    existing = existing or {}
    settings = OrtConfig.from_dict(config).to_dict() if kind == "ort" else dict(config)
    if processes:
        sp = spread.summarize_processes(processes)
        evidence = {"p50_ms": round(sp.median, 4), "p50_ci_ms": [round(sp.ci_low, 4), round(sp.ci_high, 4)],
                    "n": sp.n, "processes": sp.k, "process_spread": round(sp.spread_ratio, 4),
                    "unstable": sp.unstable}
    else:
        summary = stats.summarize(samples)
        evidence = {"p50_ms": round(summary.p50, 4), "n": summary.n,
                    "p50_ci_ms": [round(summary.p50_ci_low, 4), round(summary.p50_ci_high, 4)]}
    entry = {kind: settings, **evidence, "run_id": run_id, "method": "grid search, isolated trials", "note": note}
    existing[model_name] = entry
    atomic_write_yaml(path, existing, sort_keys=True)
    return entry


def read_best_config(path: Path, model_name: str, kind: str = "ort") -> dict | None:
    """The stored best configuration (of ``kind``) for a model, or None."""
    path = Path(path)
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    entry = data.get(model_name)
    return entry.get(kind) if entry else None
