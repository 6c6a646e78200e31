"""Grid search over ONNX Runtime session options: exhaustive and adaptive, resumable.

A grid spec is a dict of lists over :class:`~saraikit.sessions.OrtConfig`
fields, e.g. ``{"graph_optimization_level": ["BASIC", "ALL"],
"intra_op_num_threads": [1, 2]}``; its cartesian product is the set of
configurations. Every configuration is measured by a *measure function*
``measure(config: dict, plan: dict) -> list[float]`` (latencies in ms). In
production that is :func:`isolated_measure`, which runs
:func:`saraikit.bench.bench_onnx` in a fresh process per trial and stores the
trial; tests inject synthetic timings.

Strategies:

- ``exhaustive``: every configuration with the full plan.
- ``successive_halving`` (racing): every configuration starts with a small
  plan; after each round, configurations whose latency is statistically worse
  than the leader's (bootstrap CI of the ratio of medians entirely above 1,
  :func:`saraikit.stats.compare`) are dropped, and at most the best
  ``keep_fraction`` survive; survivors are measured again with ``growth``
  times more iterations. Samples accumulate across rounds. It stops when one
  configuration is left or after ``max_rounds``.

Resumability: each trial's key is the configuration plus its plan; a rerun
asks the results store whether a successful trial with that key exists for
this model and target, and reuses its stored samples instead of measuring
again. A search killed after k trials therefore resumes with k done.

Decisions:
- The winner is the configuration with the lowest median; the "equivalent"
  set is every configuration not significantly slower than it.
- ``best_configs.yaml`` (per target) maps a model name to its best ORT config
  and the evidence (P50, CI, n, run id); it is merged and written atomically,
  so other models' entries survive.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from saraikit.core import stats
from saraikit.core.errors import ConfigError
from saraikit.engines.ort import OrtConfig

MeasureFn = Callable[[dict, dict], list]


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
    config: dict
    samples: list[float] = field(default_factory=list)
    rounds: int = 0
    dropped_in_round: int | None = None
    drop_reason: str = ""
    failed: str | None = None

    @property
    def median(self) -> float:
        return float(np.median(self.samples)) if self.samples else math.inf


@dataclass
class SearchResult:
    strategy: str
    candidates: list[Candidate]
    wall_s: float
    trials_run: int
    trials_reused: int

    def table(self) -> pd.DataFrame:
        """Ranking with confidence intervals and the verdict against the best."""
        ok = [c for c in self.candidates if c.samples and not c.failed]
        best = min(ok, key=lambda c: c.median) if ok else None
        rows = []
        for c in self.candidates:
            row = {"config": config_label(c.config), **c.config, "rounds": c.rounds, "n": len(c.samples),
                   "status": "failed" if c.failed else ("dropped" if c.dropped_in_round else "finalist"),
                   "reason": c.failed or c.drop_reason}
            if c.samples and not c.failed:
                s = stats.summarize(c.samples)
                row.update(p50_ms=s.p50, p50_ci_low=s.p50_ci_low, p50_ci_high=s.p50_ci_high,
                           p90=stats.format_percentile(s, "p90"))
                if best is not None and c is not best:
                    cmp = stats.compare(best.samples, c.samples)
                    row.update(ratio_to_best=cmp.ratio, ratio_ci_low=cmp.ci_low, ratio_ci_high=cmp.ci_high,
                               vs_best=cmp.verdict)
                elif c is best:
                    row.update(ratio_to_best=1.0, ratio_ci_low=1.0, ratio_ci_high=1.0, vs_best="best")
            rows.append(row)
        frame = pd.DataFrame(rows)
        if "p50_ms" in frame:
            frame = frame.sort_values("p50_ms", na_position="last").reset_index(drop=True)
            frame.insert(0, "rank", range(1, len(frame) + 1))
        return frame

    def best(self) -> Candidate:
        ok = [c for c in self.candidates if c.samples and not c.failed and c.dropped_in_round is None]
        ok = ok or [c for c in self.candidates if c.samples and not c.failed]
        if not ok:
            raise ConfigError("no configuration of the grid produced a measurement")
        return min(ok, key=lambda c: c.median)

    def equivalent_to_best(self) -> list[Candidate]:
        """Configurations not significantly slower than the best (bootstrap CI of the ratio)."""
        best = self.best()
        return [c for c in self.candidates if c.samples and not c.failed
                and (c is best or stats.compare(best.samples, c.samples).verdict != "slower")]


def exhaustive(configs: list[dict], measure: MeasureFn, plan: dict) -> SearchResult:
    start = time.perf_counter()
    candidates = [Candidate(c) for c in configs]
    counter = _Counter()
    for cand in candidates:
        _measure_into(cand, measure, plan, counter)
    return SearchResult("exhaustive", candidates, time.perf_counter() - start, counter.run, counter.reused)


def successive_halving(configs: list[dict], measure: MeasureFn, first_plan: dict, growth: float = 2.0,
                       keep_fraction: float = 0.5, max_rounds: int = 4) -> SearchResult:
    """Racing: measure all with a small plan, drop those significantly worse than the leader, grow the plan."""
    if not 0 < keep_fraction < 1:
        raise ConfigError(f"keep_fraction must be between 0 and 1, got {keep_fraction}")
    start = time.perf_counter()
    candidates = [Candidate(c) for c in configs]
    alive = list(candidates)
    counter = _Counter()
    plan = dict(first_plan)
    for round_no in range(1, max_rounds + 1):
        for cand in alive:
            _measure_into(cand, measure, {**plan, "round": round_no}, counter)
        alive = [c for c in alive if not c.failed]
        if len(alive) <= 1:
            break
        leader = min(alive, key=lambda c: c.median)
        survivors = []
        for cand in alive:
            if cand is not leader and stats.compare(leader.samples, cand.samples).verdict == "slower":
                cand.dropped_in_round, cand.drop_reason = round_no, "significantly slower than the leader"
            else:
                survivors.append(cand)
        survivors.sort(key=lambda c: c.median)
        keep = max(1, math.ceil(len(alive) * keep_fraction))
        for cand in survivors[keep:]:
            cand.dropped_in_round, cand.drop_reason = round_no, f"not in the best {keep_fraction:.0%} after round {round_no}"
        alive = survivors[:keep]
        if len(alive) <= 1:
            break
        plan["min_iterations"] = int(math.ceil(plan.get("min_iterations", 10) * growth))
        plan["min_duration_s"] = plan.get("min_duration_s", 0.0) * growth
    return SearchResult("successive_halving", candidates, time.perf_counter() - start, counter.run, counter.reused)


@dataclass
class _Counter:
    run: int = 0
    reused: int = 0


def _measure_into(cand: Candidate, measure: MeasureFn, plan: dict, counter: _Counter) -> None:
    try:
        samples, reused = _unpack(measure(cand.config, plan))
    except MeasurementFailed as exc:
        cand.failed = str(exc)
        counter.run += 1
        return
    cand.samples.extend(samples)
    cand.rounds += 1
    if reused:
        counter.reused += 1
    else:
        counter.run += 1


def _unpack(result) -> tuple[list[float], bool]:
    if isinstance(result, tuple):
        return list(result[0]), bool(result[1])
    return list(result), False


class MeasurementFailed(Exception):
    """A trial failed (crash, timeout, error); the configuration is recorded as failed."""


def isolated_measure(model_path: str, store, run_id: str, model_name: str, model_sha256: str | None,
                     target: str, experiment: str = "grid_search", dims: dict | None = None,
                     values: dict | None = None, feeds: dict | None = None, timeout_s: float = 600.0,
                     resume: bool = True) -> MeasureFn:
    """A measure function that runs each trial in a fresh process and stores it (resumable)."""
    from saraikit.experiments.bench import OnnxBench, bench_onnx

    def measure(config: dict, plan: dict):
        plan = {k: v for k, v in plan.items() if k != "round"}
        spec = OnnxBench(model_path=model_path, ort=config, plan=plan, dims=dims or {}, values=values or {},
                         feeds=feeds)
        key = spec.config_key()
        if resume and store.has_trial(experiment, key, model_sha256, target=target):
            stored = store.query(
                "SELECT t.samples FROM trials t JOIN runs r ON t.run_id = r.run_id WHERE t.experiment = ? "
                "AND t.config_key = ? AND t.status = 'ok' AND t.model_sha256 IS ? AND r.target = ? "
                "ORDER BY t.trial_id DESC LIMIT 1", (experiment, key, model_sha256, target))
            return json.loads(stored.iloc[0]["samples"]), True
        outcome = bench_onnx(spec, store=store, run_id=run_id, experiment=experiment, model_name=model_name,
                             model_sha256=model_sha256, timeout_s=timeout_s)
        if not outcome.ok:
            raise MeasurementFailed(outcome.error)
        return outcome.raw["samples_ms"], False

    return measure


def heatmap_frame(table: pd.DataFrame, rows: str = "intra_op_num_threads",
                  columns: str = "graph_optimization_level") -> pd.DataFrame:
    """Best P50 for each (rows, columns) cell, over the other knobs."""
    ok = table.dropna(subset=["p50_ms"])
    if rows not in ok or columns not in ok:
        raise ConfigError(f"the grid has no {rows!r} or {columns!r} axis to draw")
    return ok.pivot_table(index=rows, columns=columns, values="p50_ms", aggfunc="min")


# --- best configs ----------------------------------------------------------------------------

def write_best_config(path: Path, model_name: str, config: dict, samples: list[float], run_id: str,
                      note: str = "", kind: str = "ort") -> dict:
    """Merge one best configuration into ``best_configs.yaml`` (atomic write).

    ``kind`` names what ``config`` holds: ``ort`` (validated as an OrtConfig) or
    any other plain mapping, e.g. ``threads`` for the pipeline's thread split.
    """
    path = Path(path)
    existing = yaml.safe_load(path.read_text()) if path.exists() else {}
    existing = existing or {}
    summary = stats.summarize(samples)
    settings = OrtConfig.from_dict(config).to_dict() if kind == "ort" else dict(config)
    entry = {kind: settings, "p50_ms": round(summary.p50, 4),
             "p50_ci_ms": [round(summary.p50_ci_low, 4), round(summary.p50_ci_high, 4)], "n": summary.n,
             "run_id": run_id, "method": "grid search, isolated trials", "note": note}
    existing[model_name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".best_configs.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(existing, fh, sort_keys=True)
    os.replace(tmp, path)
    return entry


def read_best_config(path: Path, model_name: str, kind: str = "ort") -> dict | None:
    """The stored best configuration (of ``kind``) for a model, or None."""
    path = Path(path)
    if not path.exists():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    entry = data.get(model_name)
    return entry.get(kind) if entry else None
