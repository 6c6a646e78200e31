"""Generic ONNX model benchmark, and the harness-overhead benchmark.

The split follows optimum-benchmark: the *backend* is an ONNX Runtime session
built from an :class:`~saraikit.sessions.OrtConfig`; the *scenario* is
"load, first inference, then a timed loop"; the *launcher* is either inline or
an isolated process (:func:`saraikit.trials.run_isolated`); the *trackers* are
:func:`saraikit.timing.timed`, :func:`saraikit.timing.measure` and
:func:`saraikit.timing.memory_snapshot`.

Inputs are either given (real features, from later notebooks) or synthetic,
generated from the model's input spec; the input kind is stored in the trial
config as ``inputs: synthetic | real`` so a synthetic figure is never read as
a real-input figure.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from saraikit.core import stats
from saraikit.engines.ort import OrtConfig, build_ort_session, make_runner
from saraikit.core.store import Figure, ResultsStore, Trial
from saraikit.experiments.synthetic import synthetic_inputs
from saraikit.core.memory import memory_snapshot
from saraikit.core.timing import TimingPlan, measure, timed
from saraikit.core.trials import run_isolated


@dataclass
class OnnxBench:
    """What to benchmark: a model, session options, inputs and a timing plan."""

    model_path: str
    ort: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)  # values for dynamic dimensions (synthetic inputs)
    values: dict = field(default_factory=dict)  # fixed values for some inputs (synthetic inputs)
    feeds: dict | None = None  # real inputs; when given, no synthetic input is generated
    seed: int = 0

    @property
    def inputs_kind(self) -> str:
        return "real" if self.feeds is not None else "synthetic"

    def config(self) -> dict:
        """What identifies this benchmark's configuration in the database."""
        return {"ort": OrtConfig.from_dict(self.ort).to_dict(), "plan": TimingPlan.from_dict(self.plan).to_dict(),
                "dims": self.dims, "inputs": self.inputs_kind,
                "values": {k: np.asarray(v).tolist() for k, v in self.values.items()}}

    def config_key(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def run_onnx_bench(spec: OnnxBench) -> dict:
    """Run the scenario in *this* process and return plain data (picklable)."""
    config = OrtConfig.from_dict(spec.ort)
    plan = TimingPlan.from_dict(spec.plan)
    memory_before = memory_snapshot()
    session, load_s = timed(lambda: build_ort_session(spec.model_path, config))
    memory_loaded = memory_snapshot()
    feeds = spec.feeds if spec.feeds is not None else synthetic_inputs(
        session, dims=spec.dims, seed=spec.seed, values=spec.values)
    runner = make_runner(session, feeds, config.use_io_binding)
    _, first_s = timed(runner)
    timing = measure(runner, plan)
    memory_after = memory_snapshot()
    return {
        "load_s": load_s,
        "first_inference_ms": first_s * 1000,
        "samples_ms": timing.samples_ms,
        "warmup_ms": timing.warmup_ms,
        "method": timing.method(),
        "memory": {"before": memory_before.to_dict(), "loaded": memory_loaded.to_dict(),
                   "after": memory_after.to_dict()},
        "input_shapes": {k: list(np.shape(v)) for k, v in feeds.items()},
    }


def latency_figures(summary: stats.Summary) -> list[Figure]:
    """The latency figures of a summary, with percentile support recorded on each."""
    figures = [Figure(f"latency_{name}", getattr(summary, name), summary.unit, n=summary.n)
               for name in ("mean", "std", "min", "max", "p50")]
    figures.append(Figure("latency_cv", summary.cv, "", n=summary.n, provenance="derived"))
    for name in ("p90", "p95", "p99"):
        figures.append(Figure(f"latency_{name}", getattr(summary, name), summary.unit, n=summary.n,
                              extra={"supported": summary.supported[name],
                                     "min_samples": stats.PERCENTILE_MIN_SAMPLES[name]}))
    figures += [Figure("latency_p50_ci_low", summary.p50_ci_low, summary.unit, n=summary.n, provenance="derived",
                       extra={"confidence": summary.confidence, "method": "bootstrap"}),
                Figure("latency_p50_ci_high", summary.p50_ci_high, summary.unit, n=summary.n, provenance="derived",
                       extra={"confidence": summary.confidence, "method": "bootstrap"})]
    return figures


def bench_figures(raw: dict, summary: stats.Summary) -> list[Figure]:
    after = raw["memory"]["after"]
    loaded = raw["memory"]["loaded"]
    figures = [Figure("load_time", raw["load_s"], "s", n=1),
               Figure("first_inference", raw["first_inference_ms"], "ms", n=1)]
    figures += latency_figures(summary)
    figures.append(Figure("throughput", 1000.0 / summary.mean, "inferences/s", n=summary.n, provenance="derived"))
    figures += [Figure("rss_after_load", loaded["rss_bytes"], "bytes", n=1),
                Figure("peak_rss", after["peak_rss_bytes"], "bytes", n=1)]
    for key in ("uss_bytes", "pss_bytes"):
        if after.get(key) is not None:
            figures.append(Figure(key.replace("_bytes", ""), after[key], "bytes", n=1))
    return figures


@dataclass
class BenchOutcome:
    ok: bool
    summary: stats.Summary | None
    raw: dict | None
    error: str | None
    trial_id: int | None


def bench_onnx(spec: OnnxBench, store: ResultsStore | None = None, run_id: str | None = None,
               experiment: str = "onnx_benchmark", model_name: str | None = None,
               model_sha256: str | None = None, isolated: bool = True,
               timeout_s: float = 600.0) -> BenchOutcome:
    """Benchmark one configuration (in a fresh process by default) and store the figures."""
    if isolated:
        result = run_isolated(run_onnx_bench, spec, timeout_s=timeout_s)
        raw, error = (result.value, None) if result.ok else (None, f"{result.status}: {result.reason()}")
    else:
        try:
            raw, error = run_onnx_bench(spec), None
        except Exception as exc:  # noqa: BLE001 - a failed configuration is a result
            raw, error = None, f"error: {type(exc).__name__}: {exc}"
    summary = stats.summarize(raw["samples_ms"]) if raw else None
    trial_id = None
    if store is not None:
        run_id = run_id or store.start_run()
        trial = Trial(
            experiment=experiment, config=spec.config(), config_key=spec.config_key(),
            model_name=model_name or Path(spec.model_path).stem, model_sha256=model_sha256,
            status="ok" if raw else "failed", error=error,
            method={**(raw["method"] if raw else {}), "isolated": isolated, "inputs": spec.inputs_kind},
            samples=raw["samples_ms"] if raw else None,
            figures=bench_figures(raw, summary) if raw else [],
        )
        trial_id = store.record(run_id, trial)
    return BenchOutcome(raw is not None, summary, raw, error, trial_id)


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
    from saraikit.core.errors import ConfigError

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
                 models_dir: Path | None = None, progress: bool = True):
    """Benchmark several provisioned models, each in its own process.

    ``benchmarks`` maps a model name to its input settings (``dims``, ``values``).
    Returns ``(table, samples)``: a DataFrame with one row per model (percentiles
    already formatted with their support flags) and the raw samples per model.
    """
    import pandas as pd

    from saraikit.models import catalog
    from saraikit.core.progress import progress as tqdm

    rows, samples = [], {}
    for name, inputs in tqdm(benchmarks.items(), desc=experiment, disable=not progress):
        entry = catalog.model_entry(name, models_dir)
        path = (models_dir or catalog.paths.models_dir()) / entry.path
        spec = OnnxBench(model_path=str(path), ort=ort or {}, plan=plan or {},
                         dims=inputs.get("dims", {}), values=inputs.get("values", {}))
        outcome = bench_onnx(spec, store=store, run_id=run_id, experiment=experiment, model_name=name,
                             model_sha256=entry.sha256, timeout_s=timeout_s)
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
        "peak_rss_MiB": raw["memory"]["after"]["peak_rss_bytes"] / 2**20,
        "input_shapes": raw["input_shapes"], "error": "",
    }
