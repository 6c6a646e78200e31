import numpy as np
import pytest

from saraikit.core import spread
from saraikit.core.errors import MeasurementError
from saraikit.experiments import aa_check, grid

from helpers import tiny_matmul_model


def drifting_process_measure(seed: int = 0, process_sd: float = 0.08):
    """The same configuration every call; each process lands at its own level (sd 8%), 1% noise inside."""
    rng = np.random.default_rng(seed)

    def measure(config, plan):
        level = 5.0 * rng.lognormal(0, process_sd)
        return list(level * rng.lognormal(0, 0.01, plan.get("min_iterations", 10)))

    return measure


def test_process_drift_fools_the_pooled_comparison_but_not_the_paired_one():
    check = aa_check.aa_compare(drifting_process_measure(), plan={"min_iterations": 120}, repetitions=10,
                                processes=4)
    assert len(check.table) == 10 and list(check.table["repetition"]) == list(range(1, 11))
    # one process per side and thousands of tight samples: almost every A/A comparison "differs"
    assert check.significant("old_verdict") >= 8
    # paired by round over 4 processes, the t-interval widens with the drift: (about) 5% false positives
    assert check.significant("verdict") <= 2
    rates = check.rates().set_index("method")
    assert rates["comparisons"].tolist() == [10, 10]
    assert rates["false_positive_rate"].iloc[1] == check.significant("old_verdict") / 10


def test_a_failed_side_stops_the_check_with_its_reason():
    def measure(config, plan):
        raise grid.MeasurementFailed("crashed: process killed by SIGSEGV")

    with pytest.raises(MeasurementError, match="SIGSEGV"):
        aa_check.aa_compare(measure, repetitions=1)
    with pytest.raises(MeasurementError, match="repetitions"):
        aa_check.aa_compare(drifting_process_measure(), repetitions=0)


def test_aa_check_on_a_small_model(tmp_path):
    model = tiny_matmul_model(tmp_path / "tiny.onnx")
    check = aa_check.aa_check(str(model), repetitions=3, processes=2, dims={"batch": 1},
                              plan={"warmup": 1, "min_iterations": 20, "min_duration_s": 0.0})
    table = check.table
    assert len(table) == 3 and check.processes == 2
    assert {"ratio", "ci_low", "ci_high", "p_value", "verdict", "old_ratio", "old_verdict"} <= set(table.columns)
    assert set(table["verdict"]) <= set(spread.VERDICTS) and set(table["old_verdict"]) <= set(spread.VERDICTS)
    assert (table["rounds"] == 2).all() and (table["ratio"] > 0).all()
    assert 0 <= check.significant() <= 3 and len(check.rates()) == 2
