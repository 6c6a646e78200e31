import numpy as np
import pytest

from saraikit.core import stats
from saraikit.experiments.bench import BenchOutcome
from saraikit.experiments.compare import SideBySide, side_by_side, target_status
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
    assert table.loc["int8", "target 240 ms"] == "meets" and table.loc["fp32", "target 240 ms"] == "misses"
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
    assert target_status(s, 240) == "borderline"
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
    assert sbs.verdict().startswith("Scenario A: small and big meet")
    assert len(tmp_store.trials(experiment="compare")) == 2
