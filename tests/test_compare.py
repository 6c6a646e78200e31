import numpy as np
import pytest

from saraikit.core import spread, stats
from saraikit.experiments.bench import BenchOutcome
from saraikit.experiments.compare import SideBySide, side_by_side, versus_target
from saraikit.experiments.bench import OnnxBench

from helpers import tiny_matmul_model


def outcome(median_ms: float, n: int = 80, seed: int = 0) -> BenchOutcome:
    samples = list(median_ms * np.random.default_rng(seed).lognormal(0, 0.03, n))
    raw = {"samples_ms": samples, "load_s": 0.1, "first_inference_ms": median_ms * 2,
           "memory": {"after": {"peak_rss_bytes": 100 * 2**20}}}
    return BenchOutcome(True, stats.summarize(samples), raw, None, None)


def test_scenario_a_when_the_candidate_meets_the_target():
    sbs = SideBySide("fp32", "int8", outcome(354), outcome(180, seed=1), 240, 500)
    assert sbs.verdict().startswith("Scenario A: int8 meets the 240 ms")
    assert "int8 is faster than fp32" in sbs.verdict()
    table = sbs.table().set_index("model")
    assert table.loc["int8", "target 240 ms"] == "pass" and table.loc["fp32", "target 240 ms"] == "fail"  # one vocabulary
    assert "unsupported" not in table.loc["int8", "p90"] and "unsupported: n=80 < 662" in table.loc["int8", "p99"]


def test_scenario_b_when_both_are_above_the_ceiling():
    sbs = SideBySide("a", "b", outcome(2870), outcome(1000, seed=1), 240, 500)
    assert sbs.verdict().startswith("Scenario B")


def test_scenario_c_when_better_but_not_enough():
    sbs = SideBySide("a", "b", outcome(354), outcome(262, seed=1), 240, 500)
    assert sbs.verdict().startswith("Scenario C: b is the faster")
    assert sbs.comparison.verdict == "faster" and sbs.comparison.ratio == pytest.approx(262 / 354, rel=0.02)


def test_borderline_when_the_interval_straddles_the_target():
    s = stats.summarize([239, 241] * 10)
    assert versus_target(s, 240) == "inconclusive"
    sbs = SideBySide("a", "b", outcome(400), BenchOutcome(True, s, {"samples_ms": [239, 241] * 10}, None, None), 240, 500)
    assert sbs.verdict().startswith("Borderline")


def test_failed_model_gives_no_verdict():
    failed = BenchOutcome(False, None, None, "crashed: SIGSEGV", None)
    sbs = SideBySide("a", "b", outcome(100), failed, 240, 500)
    assert sbs.verdict() == "No verdict: the benchmark of b failed."
    assert sbs.table().set_index("model").loc["b", "status"] == "failed"


def test_side_by_side_runs_two_real_sessions(tmp_path, tmp_store):
    small = tiny_matmul_model(tmp_path / "small.onnx", size=8)
    big = tiny_matmul_model(tmp_path / "big.onnx", size=512)
    plan = {"warmup": 2, "min_iterations": 40, "min_duration_s": 0}
    sbs = side_by_side(OnnxBench(str(small), plan=plan, dims={"batch": 64}),
                       OnnxBench(str(big), plan=plan, dims={"batch": 64}), "small", "big",
                       target_ms=1000, store=tmp_store)
    assert sbs.comparison.verdict == "slower"  # 512x512 matmuls on 64 rows vs 8x8
    assert isinstance(sbs.comparison, spread.PairedComparison) and sbs.comparison.rounds == (1, 2, 3)
    assert sbs.verdict().startswith("Scenario A: small and big meet") and "paired over 3 rounds" in sbs.verdict()
    trials = tmp_store.trials(experiment="compare")
    assert sorted(trials["model_name"]) == ["big", "small"]  # one trial per model, all its processes
    table = sbs.table().set_index("model")
    assert table.loc["big", "processes"] == 3 and table.loc["small", "n"] == 40


def outcome_in_rounds(median_ms: float, drift: list[float], seed: int = 0) -> BenchOutcome:
    """An outcome of len(drift) processes; round r is scaled by drift[r-1] (shared with the other model)."""
    rng = np.random.default_rng(seed)
    processes = [spread.ProcessSamples(tuple(median_ms * f * rng.lognormal(0, 0.02, 30)), r)
                 for r, f in enumerate(drift, start=1)]
    samples = spread.flatten(processes)
    raw = {"samples_ms": samples, "load_s": 0.1, "first_inference_ms": median_ms * 2,
           "memory": {"after": {"peak_rss_bytes": 100 * 2**20}}}
    summary = spread.summarize_processes(processes)
    return BenchOutcome(True, stats.summarize(samples), raw, None, None, processes, summary)


def test_side_by_side_pairs_rounds_so_shared_drift_is_not_a_difference():
    drift = [1.0, 1.25, 0.9]
    sbs = SideBySide("a", "b", outcome_in_rounds(300, drift), outcome_in_rounds(300, drift, seed=1), 240, 500)
    assert sbs.comparison.verdict == "no significant difference"
    assert "not significantly different" in sbs.verdict() and "paired over 3 rounds" in sbs.verdict()
    assert bool(sbs.table().set_index("model").loc["a", "unstable"]) is True
    faster = SideBySide("a", "b", outcome_in_rounds(300, drift), outcome_in_rounds(200, drift, seed=1), 240, 500)
    assert faster.comparison.verdict == "faster" and faster.comparison.ratio == pytest.approx(2 / 3, rel=0.02)
    single = SideBySide("a", "b", outcome_in_rounds(300, [1.0]), outcome_in_rounds(200, [1.0], seed=1), 240, 500)
    assert single.comparison.verdict == "insufficient samples"  # one round: no spread between rounds to judge by
    assert "too few rounds to compare b with a" in single.verdict()
