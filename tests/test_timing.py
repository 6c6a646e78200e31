import time

import pytest

from saraikit.core.errors import MeasurementError
from saraikit.core.timing import TimingPlan, measure, timed


def test_min_iterations_dominates_when_calls_are_slow():
    calls = []
    timing = measure(lambda: calls.append(1), TimingPlan(warmup=2, min_iterations=25, min_duration_s=0))
    assert timing.n == 25
    assert len(calls) == 27  # 2 warmups + 25 measured
    assert len(timing.warmup_ms) == 2


def test_min_duration_dominates_when_calls_are_fast():
    timing = measure(lambda: time.sleep(0.002), TimingPlan(warmup=0, min_iterations=3, min_duration_s=0.2))
    assert timing.wall_s >= 0.2
    assert timing.n >= 0.2 / 0.004  # well over 3 iterations
    assert timing.stop_reason == "min iterations and min duration met"


def test_samples_measure_the_call():
    timing = measure(lambda: time.sleep(0.01), TimingPlan(warmup=1, min_iterations=5, min_duration_s=0))
    assert all(9.5 <= s < 60 for s in timing.samples_ms)


def test_max_iterations_caps_the_loop():
    timing = measure(lambda: None, TimingPlan(warmup=0, min_iterations=5, min_duration_s=30, max_iterations=50))
    assert timing.n == 50 and timing.stop_reason == "max_iterations reached"


def test_method_records_the_plan():
    timing = measure(lambda: None, TimingPlan(warmup=1, min_iterations=7, min_duration_s=0))
    method = timing.method()
    assert method["warmup"] == 1 and method["min_iterations"] == 7 and method["n"] == 7


@pytest.mark.parametrize("kwargs, message", [
    ({"min_iterations": 0}, "min_iterations must be an integer >= 1"),
    ({"min_iterations": -5}, "min_iterations must be an integer >= 1"),
    ({"warmup": -1}, "warmup must be an integer >= 0"),
    ({"min_duration_s": -1.0}, "min_duration_s must be >= 0"),
])
def test_bad_plans_are_rejected(kwargs, message):
    with pytest.raises(MeasurementError, match=message):
        TimingPlan(**kwargs)


def test_unknown_plan_key_is_rejected():
    with pytest.raises(MeasurementError, match="unknown timing plan keys \\['iterations'\\]"):
        TimingPlan.from_dict({"iterations": 10})


def test_timed_returns_value_and_seconds():
    value, seconds = timed(lambda: (time.sleep(0.05), 42)[1])
    assert value == 42 and 0.05 <= seconds < 1
