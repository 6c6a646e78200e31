"""Generic ONNX model benchmark, and the harness-overhead benchmark.

The split follows optimum-benchmark: the *backend* is an ONNX Runtime session
built from an :class:`~saraikit.engines.ort.OrtConfig`; the *scenario* is
"load, first inference, then a timed loop" (:mod:`saraikit.experiments.scenario`,
kept light for the worker processes); the *launcher* is either inline or
isolated processes (:func:`saraikit.trials.run_isolated`); the *trackers* are
:func:`saraikit.timing.timed`, :func:`saraikit.timing.measure` and
:func:`saraikit.timing.memory_snapshot`.

Inputs are either given (real features, from later notebooks) or synthetic,
generated from the model's input spec; the input kind is stored in the trial
config as ``inputs: synthetic | real`` so a synthetic figure is never read as
a real-input figure.

Processes: a configuration is measured in ``DEFAULT_PROCESSES`` (3) fresh
processes, each with its share of the timing plan, because the location of
the latency distribution moves from one process to the next (thread
placement, allocator state, frequency): four fresh processes of one
configuration gave P50 6.70, 6.44, 5.20 and 5.15 ms with non-overlapping
single-process CIs. The median CI is then the hierarchical bootstrap of
:mod:`saraikit.core.spread`, and the process medians and their max/min ratio
are stored with the figures. Several configurations are measured
interleaved by rounds (:func:`bench_interleaved`) so drift hits all alike.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from saraikit.core import spread, stats
from saraikit.core.errors import ConfigError
from saraikit.core.progress import progress as tqdm
from saraikit.core.store import Figure, ResultsStore, Trial, feeds_hash
from saraikit.core.timing import TimingPlan, measure
from saraikit.core.trials import run_isolated
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.experiments.scenario import OnnxBench, run_onnx_bench  # re-exported: bench.OnnxBench is the API
from saraikit.experiments.synthetic import synthetic_inputs
from saraikit.models import catalog

DEFAULT_PROCESSES = 3
"""Fresh processes per configuration: process-to-process drift must enter the CI (saraikit.core.spread)."""


def latency_figures(summary: stats.Summary, ci_method: str = "bootstrap") -> list[Figure]:
    """The latency figures of a summary, with percentile support recorded on each."""
    figures = [Figure(f"latency_{name}", getattr(summary, name), summary.unit, n=summary.n)
               for name in ("mean", "std", "min", "max", "p50")]
    figures.append(Figure("latency_cv", summary.cv, "", n=summary.n, provenance="derived"))
    for name in ("p90", "p95", "p99"):
        figures.append(Figure(f"latency_{name}", getattr(summary, name), summary.unit, n=summary.n,
                              extra={"supported": summary.supported[name],
                                     "min_samples": stats.PERCENTILE_MIN_SAMPLES[name]}))
    figures += [Figure("latency_p50_ci_low", summary.p50_ci_low, summary.unit, n=summary.n, provenance="derived",
                       extra={"confidence": summary.confidence, "method": ci_method}),
                Figure("latency_p50_ci_high", summary.p50_ci_high, summary.unit, n=summary.n, provenance="derived",
                       extra={"confidence": summary.confidence, "method": ci_method})]
    return figures


def spread_figures(summary: spread.SpreadSummary) -> list[Figure]:
    """How far the process medians of one configuration lie apart, and whether that is too far."""
    extra = {"process_medians": list(summary.process_medians), "rounds": list(summary.rounds),
             "unstable": summary.unstable, "unstable_limit": summary.unstable_limit}
    return [Figure("latency_process_median_min", summary.process_median_min, "ms", n=summary.k, provenance="derived"),
            Figure("latency_process_median_max", summary.process_median_max, "ms", n=summary.k, provenance="derived"),
            Figure("latency_process_spread", summary.spread_ratio, "x", n=summary.k, provenance="derived",
                   extra=extra),
            Figure("latency_unstable", float(summary.unstable), "", n=summary.k, provenance="derived",
                   extra={"rule": f"max/min of process medians > {summary.unstable_limit:g}"})]


def bench_figures(raw: dict, summary: stats.Summary, spread_summary: spread.SpreadSummary | None = None) -> list[Figure]:
    """Every figure of one benchmarked configuration; with ``spread_summary``, its process spread too."""
    after = raw["memory"]["after"]
    loaded = raw["memory"]["loaded"]
    k = spread_summary.k if spread_summary else 1
    figures = [Figure("load_time", raw["load_s"], "s", n=k),
               Figure("first_inference", raw["first_inference_ms"], "ms", n=k)]
    ci_method = f"hierarchical bootstrap over {k} processes" if spread_summary else "bootstrap"
    figures += latency_figures(summary, ci_method)
    figures.append(Figure("throughput", 1000.0 / summary.mean, "inferences/s", n=summary.n, provenance="derived"))
    figures += [Figure("rss_after_load", loaded["rss_bytes"], "bytes", n=1),
                Figure("peak_rss", after["peak_rss_bytes"], "bytes", n=1)]
    for key in ("uss_bytes", "pss_bytes"):
        if after.get(key) is not None:
            figures.append(Figure(key.replace("_bytes", ""), after[key], "bytes", n=1))
    return figures + (spread_figures(spread_summary) if spread_summary else [])


@dataclass
class BenchOutcome:
    """One benchmarked configuration.

    ``raw["samples_ms"]`` holds every sample of every process (round order);
    ``processes`` the same samples per process, and ``spread`` their summary.
    ``summary`` describes all samples, with the median CI taken from
    ``spread`` (hierarchical over processes) when there is one.
    """

    ok: bool
    summary: stats.Summary | None
    raw: dict | None
    error: str | None
    trial_id: int | None
    processes: list[spread.ProcessSamples] = field(default_factory=list)
    spread: spread.SpreadSummary | None = None


def resolve_processes(processes: int | None, isolated: bool) -> int:
    """The process count: ``DEFAULT_PROCESSES`` when isolated, 1 inline (this process is the only one)."""
    if processes is None:
        return DEFAULT_PROCESSES if isolated else 1
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise ConfigError(f"processes must be an integer >= 1, got {processes!r}")
    if processes > 1 and not isolated:
        raise ConfigError(f"processes={processes} needs fresh processes: an inline run has only this one "
                          "(drop --inline, or use processes=1)")
    return processes


def split_plan(plan: dict, processes: int) -> list[dict]:
    """Per-process plans whose ``min_iterations`` and ``min_duration_s`` add up to the plan's.

    The total measuring time stays about the same; it is spread over more,
    shorter processes. Iterations are split exactly (20 over 3: 7, 7, 6), with
    at least one per process; every process keeps the full warmup, since each
    starts cold.
    """
    processes = resolve_processes(processes, isolated=True)
    full = TimingPlan.from_dict(plan)
    base, extra = divmod(full.min_iterations, processes)
    return [{**plan, "min_iterations": max(1, base + (1 if i < extra else 0)),
             "min_duration_s": full.min_duration_s / processes} for i in range(processes)]


def run_process(spec: OnnxBench, isolated: bool = True, timeout_s: float = 600.0) -> tuple[dict | None, str | None]:
    """One run of the scenario, in a fresh process (or this one): ``(raw, None)`` or ``(None, error)``."""
    if isolated:
        result = run_isolated(run_onnx_bench, spec, timeout_s=timeout_s)
        return (result.value, None) if result.ok else (None, f"{result.status}: {result.reason()}")
    try:
        return run_onnx_bench(spec), None
    except Exception as exc:  # noqa: BLE001 - a failed configuration is a result
        return None, f"error: {type(exc).__name__}: {exc}"


def combine_processes(spec: OnnxBench, raws: list[dict]) -> dict:
    """One raw dict from the raw dicts of a configuration's processes (round order).

    Load time and first inference are the medians over processes (each
    process starts cold); memory is that of the process with the highest
    peak RSS (the conservative figure); ``method`` is the requested plan plus
    the totals and what each process did.
    """
    per_process = [{"round": i, "n": len(r["samples_ms"]), "load_s": r["load_s"],
                    "first_inference_ms": r["first_inference_ms"], "min_iterations": r["method"]["min_iterations"],
                    "min_duration_s": r["method"]["min_duration_s"], "wall_s": r["method"]["wall_s"],
                    "stop_reason": r["method"]["stop_reason"]} for i, r in enumerate(raws, start=1)]
    method = {**TimingPlan.from_dict(spec.plan).to_dict(), "n": sum(p["n"] for p in per_process),
              "wall_s": round(sum(p["wall_s"] for p in per_process), 3),
              "stop_reason": "; ".join(sorted({p["stop_reason"] for p in per_process})),
              "timer": raws[0]["method"]["timer"], "processes": len(raws),
              "process_sizes": [p["n"] for p in per_process]}
    return {
        "load_s": float(np.median([r["load_s"] for r in raws])),
        "first_inference_ms": float(np.median([r["first_inference_ms"] for r in raws])),
        "samples_ms": [v for r in raws for v in r["samples_ms"]],
        "warmup_ms": [v for r in raws for v in r["warmup_ms"]],
        "method": method,
        "memory": max((r["memory"] for r in raws), key=lambda m: m["after"]["peak_rss_bytes"]),
        "input_shapes": raws[0]["input_shapes"],
        "per_process": per_process,
    }


def trial_key(spec: OnnxBench, round_index: int | None = None) -> str:
    """The stored trial's key: the configuration's, plus the round when the trial is one round's process."""
    return spec.config_key() if round_index is None else f"{spec.config_key()}:round{round_index}"


@dataclass
class _Measured:
    """What the rounds of one configuration produced so far."""

    spec: OnnxBench
    plans: list[dict]
    raws: list[dict] = field(default_factory=list)
    error: str | None = None


def bench_interleaved(specs: Mapping[str, OnnxBench], processes: int | None = None,
                      store: ResultsStore | None = None, run_id: str | None = None,
                      experiment: str = "onnx_benchmark", model_names: Mapping[str, str] | None = None,
                      model_sha256s: Mapping[str, str | None] | None = None, isolated: bool = True,
                      timeout_s: float = 600.0, round_index: int | None = None) -> dict[str, BenchOutcome]:
    """Benchmark several configurations over ``processes`` rounds, interleaved: A, B, C, then A, B, C, ...

    Each round runs every configuration once, each in a fresh process with
    its share of the plan (:func:`split_plan`), so slow drift of the machine
    hits all configurations alike and round ``r`` of A can be compared with
    round ``r`` of B (:func:`saraikit.core.spread.compare_paired`). A
    configuration whose process fails is failed and not run again. One trial
    per configuration is stored, with all samples and its process spread.
    ``round_index`` (only with one process) labels that process as round
    ``round_index`` of a larger design; the trial then belongs to that round.
    Returns an outcome per key of ``specs``, with ``processes`` in round order.
    """
    k = resolve_processes(processes, isolated)
    if round_index is not None and k != 1:
        raise ConfigError(f"round_index labels a single process; got processes={k}")
    first_round = round_index or 1
    measured = {name: _Measured(spec, split_plan(spec.plan, k)) for name, spec in specs.items()}
    for r in range(k):
        for m in measured.values():
            if m.error is None:
                raw, m.error = run_process(replace(m.spec, plan=m.plans[r]), isolated, timeout_s)
                if raw is not None:
                    m.raws.append(raw)
    outcomes = {}
    for name, m in measured.items():
        outcome = _outcome(m, first_round)
        if store is not None:
            run_id = run_id or store.start_run()
            model_name = (model_names or {}).get(name) or Path(m.spec.model_path).stem
            trial = outcome_trial(m.spec, outcome, experiment, model_name, (model_sha256s or {}).get(name), isolated,
                           round_index)
            outcome.trial_id = store.record(run_id, trial)
        outcomes[name] = outcome
    return outcomes


def single_outcome(spec: OnnxBench, raw: dict | None, error: str | None, round_index: int = 1) -> BenchOutcome:
    """The outcome of ONE process's raw result (or its error), as :func:`bench_onnx` with ``processes=1`` makes it.

    For measurements made elsewhere: a warm process, a Dask worker."""
    return _outcome(_Measured(spec, [spec.plan], [raw] if raw is not None else [], error), round_index)


def _outcome(m: _Measured, first_round: int) -> BenchOutcome:
    processes = [spread.ProcessSamples(r["samples_ms"], first_round + i) for i, r in enumerate(m.raws)]
    if m.error is not None:
        error = m.error if len(m.plans) == 1 else f"{m.error} (process {len(m.raws) + 1} of {len(m.plans)})"
        return BenchOutcome(False, None, None, error, None, processes)
    raw = combine_processes(m.spec, m.raws)
    spread_summary = spread.summarize_processes(processes)
    summary = replace(stats.summarize(raw["samples_ms"]), p50_ci_low=spread_summary.ci_low,
                      p50_ci_high=spread_summary.ci_high)
    return BenchOutcome(True, summary, raw, None, None, processes, spread_summary)


def outcome_trial(spec: OnnxBench, outcome: BenchOutcome, experiment: str, model_name: str,
                  model_sha256: str | None, isolated: bool, round_index: int | None) -> Trial:
    """The trial stored for one benchmarked configuration (the head uses it for a worker's outcome too)."""
    raw = outcome.raw
    config = spec.config() if round_index is None else {**spec.config(), "round": round_index}
    return Trial(
        experiment=experiment, config=config, config_key=trial_key(spec, round_index),
        inputs_hash=feeds_hash(spec.feeds) if spec.feeds is not None else None,
        model_name=model_name, model_sha256=model_sha256, status="ok" if raw else "failed", error=outcome.error,
        method={**(raw["method"] if raw else {}), "isolated": isolated, "inputs": spec.inputs_kind,
                "rounds": [p.round for p in outcome.processes]},
        samples=raw["samples_ms"] if raw else None,
        figures=bench_figures(raw, outcome.summary, outcome.spread) if raw else [],
    )


def bench_onnx(spec: OnnxBench, store: ResultsStore | None = None, run_id: str | None = None,
               experiment: str = "onnx_benchmark", model_name: str | None = None,
               model_sha256: str | None = None, isolated: bool = True,
               timeout_s: float = 600.0, processes: int | None = None,
               round_index: int | None = None) -> BenchOutcome:
    """Benchmark one configuration over ``processes`` fresh processes (default 3) and store the figures.

    The plan is split across the processes (:func:`split_plan`); the median
    CI is the hierarchical one over processes. ``processes=1`` (or
    ``isolated=False``) is one process with the whole plan, as before.
    """
    name = model_name or Path(spec.model_path).stem
    return bench_interleaved({name: spec}, processes, store, run_id, experiment, {name: name},
                             {name: model_sha256}, isolated, timeout_s, round_index)[name]


# --- harness overhead -------------------------------------------------------------------------

@dataclass
class Overhead:
    """Per-call time through saraikit's harness versus a bare ``session.run`` loop."""

    comparison: stats.Comparison
    harness_ms: list[float]
    bare_ms: list[float]
    calls_per_round: int
    rounds: int

    @property
    def ratio(self) -> float:
        return self.comparison.ratio

    def to_dict(self) -> dict:
        return {"ratio": self.ratio, "ci_low": self.comparison.ci_low, "ci_high": self.comparison.ci_high,
                "verdict": self.comparison.verdict, "rounds": self.rounds,
                "calls_per_round": self.calls_per_round,
                "harness_median_ms": float(np.median(self.harness_ms)),
                "bare_median_ms": float(np.median(self.bare_ms))}


def harness_overhead(model_path: str, ort: dict | None = None, dims: dict | None = None,
                     values: dict | None = None, rounds: int = 10, round_s: float = 0.5) -> Overhead:
    """Time the same session with :func:`measure` and with a bare loop, rounds interleaved.

    Each round gives one per-call figure per method: the harness's wall time
    for ``calls_per_round`` measured calls divided by the count, and the bare
    loop's wall time divided by the count. ``calls_per_round`` is calibrated
    so that one round of one method lasts about ``round_s`` seconds (short
    rounds are dominated by scheduler noise). Interleaving (A B A B ...) cancels
    slow drifts such as frequency scaling. The ratio is harness / bare, with a
    bootstrap confidence interval over rounds; the goal is at most 1.02.
    """
    config = OrtConfig.from_dict(ort or {})
    session = build_ort_session(model_path, config)
    feeds = synthetic_inputs(session, dims=dims or {}, values=values or {})
    run = session.run
    for _ in range(5):  # warm the session once for both methods
        run(None, feeds)
    t0 = time.perf_counter()
    calibration = 0
    while time.perf_counter() - t0 < min(round_s, 0.2):
        run(None, feeds)
        calibration += 1
    per_call = (time.perf_counter() - t0) / calibration
    calls_per_round = max(5, int(round_s / per_call))
    plan = TimingPlan(warmup=0, min_iterations=calls_per_round, min_duration_s=0,
                      max_iterations=calls_per_round)
    harness, bare = [], []
    for _ in range(rounds):
        timing = measure(lambda: run(None, feeds), plan)
        harness.append(timing.wall_s * 1000 / timing.n)
        t0 = time.perf_counter()
        for _ in range(calls_per_round):
            run(None, feeds)
        bare.append((time.perf_counter() - t0) * 1000 / calls_per_round)
    comparison = stats.compare(bare, harness)
    return Overhead(comparison, harness, bare, calls_per_round, rounds)


def overhead_trial(model_path: str, overhead: Overhead, model_sha256: str | None = None,
                   model_name: str | None = None) -> Trial:
    cmp = overhead.comparison
    return Trial(
        experiment="harness_overhead", model_name=model_name or Path(model_path).stem,
        model_sha256=model_sha256,
        config={"rounds": overhead.rounds, "calls_per_round": overhead.calls_per_round},
        method={"baseline": "bare session.run loop", "candidate": "saraikit.timing.measure",
                "interleaved": True, "statistic": "ratio of medians of per-call time, bootstrap CI"},
        samples=overhead.harness_ms,
        figures=[Figure("overhead_ratio", cmp.ratio, "x", n=overhead.rounds, provenance="derived",
                        extra={"ci_low": cmp.ci_low, "ci_high": cmp.ci_high, "verdict": cmp.verdict,
                               "goal_max": 1.02}),
                 Figure("harness_per_call", float(np.median(overhead.harness_ms)), "ms", n=overhead.rounds),
                 Figure("bare_per_call", float(np.median(overhead.bare_ms)), "ms", n=overhead.rounds)],
    )


def spec_from_dict(model_path: str, values: dict) -> OnnxBench:
    """Build a benchmark spec from a plain dict (CLI, notebooks), rejecting unknown keys."""
    valid = {"ort", "plan", "dims", "values", "seed"}
    unknown = set(values) - valid
    if unknown:
        raise ConfigError(f"unknown benchmark keys {sorted(unknown)}; valid keys: {sorted(valid)}")
    return OnnxBench(model_path=str(model_path), **values)


def spec_to_dict(spec: OnnxBench) -> dict:
    return {k: v for k, v in asdict(spec).items() if k != "feeds"}


def bench_models(benchmarks: dict[str, dict], ort: dict | None = None, plan: dict | None = None,
                 store: ResultsStore | None = None, run_id: str | None = None,
                 experiment: str = "synthetic_benchmark", timeout_s: float = 600.0,
                 models_dir: Path | None = None, progress: bool = True, processes: int | None = None):
    """Benchmark several provisioned models, each over ``processes`` fresh processes (default 3).

    ``benchmarks`` maps a model name to its input settings (``dims``, ``values``).
    Returns ``(table, samples)``: a DataFrame with one row per model (percentiles
    already formatted with their support flags) and the raw samples per model.
    """
    rows, samples = [], {}
    for name, inputs in tqdm(benchmarks.items(), desc=experiment, disable=not progress):
        entry = catalog.model_entry(name, models_dir)
        path = (models_dir or catalog.paths.models_dir()) / entry.path
        spec = OnnxBench(model_path=str(path), ort=ort or {}, plan=plan or {},
                         dims=inputs.get("dims", {}), values=inputs.get("values", {}))
        outcome = bench_onnx(spec, store=store, run_id=run_id, experiment=experiment, model_name=name,
                             model_sha256=entry.sha256, timeout_s=timeout_s, processes=processes)
        rows.append(outcome_row(name, spec, outcome))
        if outcome.ok:
            samples[name] = outcome.raw["samples_ms"]
    return pd.DataFrame(rows), samples


def outcome_row(name: str, spec: OnnxBench, outcome: BenchOutcome) -> dict:
    row = {"model": name, "inputs": spec.inputs_kind, "status": "ok" if outcome.ok else "failed",
           "trial_id": outcome.trial_id}
    if not outcome.ok:
        return {**row, "error": outcome.error}
    s, raw = outcome.summary, outcome.raw
    return {
        **row, "n": s.n,
        "p50_ms": s.p50, "p50_ci_low": s.p50_ci_low, "p50_ci_high": s.p50_ci_high,
        "p50_ci": stats.format_interval(s.p50, s.p50_ci_low, s.p50_ci_high, s.confidence),
        "p90": stats.format_percentile(s, "p90"), "p99": stats.format_percentile(s, "p99"),
        "cv": s.cv, "load_s": raw["load_s"], "first_inference_ms": raw["first_inference_ms"],
        "peak_rss_MiB": raw["memory"]["after"]["peak_rss_bytes"] / 2**20, **spread_columns(outcome.spread),
        "input_shapes": raw["input_shapes"], "error": "",
    }


def spread_columns(summary: spread.SpreadSummary | None) -> dict:
    """Table columns for the process spread of an outcome (none when it has no spread summary)."""
    if summary is None:
        return {}
    return {"processes": summary.k, "process_medians_ms": [round(m, 3) for m in summary.process_medians],
            "process_spread": summary.spread_ratio, "unstable": summary.unstable}
