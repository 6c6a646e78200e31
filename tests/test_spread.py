import math

import numpy as np
import pytest
from scipy import stats as sps

from saraikit.core import spread, stats
from saraikit.core.errors import MeasurementError


def process(median: float, round_: int, n: int = 200, noise: float = 0.02, seed: int = 0) -> spread.ProcessSamples:
    rng = np.random.default_rng(seed * 1000 + round_)
    return spread.ProcessSamples(tuple(median * rng.lognormal(0, noise, n)), round_)


def test_processes_that_disagree_by_20_percent_get_a_wide_ci_and_are_unstable():
    processes = [process(5.0, 1), process(5.5, 2), process(6.0, 3)]
    summary = spread.summarize_processes(processes)
    medians = [p.median for p in processes]
    centre = float(np.mean(medians))
    assert summary.k == 3 and summary.n == 600 and summary.rounds == (1, 2, 3)
    assert summary.ci_low <= centre <= summary.ci_high
    assert summary.ci_low < 5.3 and summary.ci_high > 5.7  # near the outer process medians, not around one
    pooled = stats.summarize(spread.flatten(processes))
    assert summary.ci_high - summary.ci_low > 10 * (pooled.p50_ci_high - pooled.p50_ci_low)
    assert summary.spread_ratio == pytest.approx(max(medians) / min(medians))
    assert summary.spread_ratio == pytest.approx(1.2, rel=0.02)
    assert summary.unstable and summary.unstable_limit == 1.10
    assert summary.median == pytest.approx(float(np.median(spread.flatten(processes))))
    assert "UNSTABLE" in summary.format()


def test_agreeing_processes_are_stable_with_a_narrow_ci():
    summary = spread.summarize_processes([process(5.0, r, seed=1) for r in (1, 2, 3)])
    assert not summary.unstable and summary.spread_ratio < 1.01
    assert summary.ci_low < 5.0 < summary.ci_high and summary.ci_high - summary.ci_low < 0.05
    assert "stable (<= 1.10)" in summary.format_processes()


def test_bootstrap_is_seeded_and_handles_unequal_process_sizes():
    processes = [process(5.0, 1, n=50), process(6.0, 2, n=300)]
    a = spread.summarize_processes(processes, seed=3)
    b = spread.summarize_processes(processes, seed=3)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    # each resample draws whole processes: the bounds reach toward each process's own median
    assert a.ci_low < 5.2 and a.ci_high > 5.9


def test_one_process_reduces_to_the_ordinary_bootstrap():
    one = process(5.0, 1)
    summary = spread.summarize_processes([one])
    plain = stats.summarize(one.samples_ms)
    assert summary.k == 1 and not summary.unstable and summary.spread_ratio == 1.0
    assert (summary.ci_low, summary.ci_high) == (plain.p50_ci_low, plain.p50_ci_high)
    assert "spread between processes unknown" in summary.format_processes()


def test_too_few_samples_give_no_interval():
    summary = spread.summarize_processes([spread.ProcessSamples((1.0, 1.1), 1), spread.ProcessSamples((1.2,), 2)])
    assert math.isnan(summary.ci_low) and math.isnan(summary.ci_high) and summary.n == 3


def drifting_pair(ratio: float, rounds: int, noise: float, drift: float, seed: int):
    """Baseline and candidate per round; each round's drift factor hits both alike."""
    rng = np.random.default_rng(seed)
    base, cand = [], []
    for r in range(1, rounds + 1):
        factor = float(rng.lognormal(0, drift))
        base.append(spread.ProcessSamples(tuple(5.0 * factor * rng.lognormal(0, noise, 100)), r))
        cand.append(spread.ProcessSamples(tuple(5.0 * ratio * factor * rng.lognormal(0, noise, 100)), r))
    return base, cand


def test_shared_drift_per_round_is_no_significant_difference():
    base, cand = drifting_pair(1.0, rounds=4, noise=0.02, drift=0.15, seed=2)
    spreads = [spread.summarize_processes(x) for x in (base, cand)]
    assert all(s.unstable for s in spreads)  # the drift is there...
    result = spread.compare_paired(base, cand)
    assert result.verdict == "no significant difference"  # ...and pairing by round removes it
    assert result.ci_low < 1.0 < result.ci_high and result.p_value > 0.05
    assert result.rounds == (1, 2, 3, 4) and len(result.round_ratios) == 4


def test_a_real_10_percent_difference_is_slower():
    base, cand = drifting_pair(1.10, rounds=3, noise=0.01, drift=0.01, seed=4)
    result = spread.compare_paired(base, cand)
    assert result.verdict == "slower" and result.ci_low > 1.0 and result.p_value < 0.05
    assert result.ratio == pytest.approx(1.10, rel=0.01)
    assert result.ratio == pytest.approx(math.exp(np.mean(np.log(result.round_ratios))))
    assert spread.compare_paired(cand, base).verdict == "faster"
    assert "paired t-test" in result.format()


def test_the_t_interval_matches_scipy():
    base, cand = drifting_pair(1.05, rounds=5, noise=0.02, drift=0.05, seed=6)
    result = spread.compare_paired(base, cand)
    logs = np.log(result.round_ratios)
    test = sps.ttest_1samp(logs, 0.0)
    assert result.p_value == pytest.approx(test.pvalue)
    low, high = test.confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((math.exp(low), math.exp(high)))


def test_one_round_is_insufficient():
    base, cand = drifting_pair(2.0, rounds=1, noise=0.01, drift=0.0, seed=0)
    result = spread.compare_paired(base, cand)
    assert result.verdict == "insufficient samples" and math.isnan(result.ci_low)
    assert result.ratio == pytest.approx(2.0, rel=0.01)


def test_bad_input_is_refused_with_a_reason():
    good = [process(5.0, 1), process(5.0, 2)]
    with pytest.raises(MeasurementError, match="no process"):
        spread.summarize_processes([])
    with pytest.raises(MeasurementError, match="empty"):
        spread.summarize_processes([spread.ProcessSamples((), 1)])
    with pytest.raises(MeasurementError, match="more than one process in round"):
        spread.summarize_processes([process(5.0, 1), process(5.0, 1, seed=2)])
    with pytest.raises(MeasurementError, match="<= 0"):
        spread.summarize_processes([spread.ProcessSamples((1.0, 0.0), 1)])
    with pytest.raises(MeasurementError, match="paired rounds differ"):
        spread.compare_paired(good, [process(5.0, 1), process(5.0, 3)])
    with pytest.raises(MeasurementError, match="paired rounds differ"):
        spread.compare_paired(good, good[:1])
    with pytest.raises(MeasurementError, match="no process"):
        spread.compare_paired([], good)
    with pytest.raises(MeasurementError, match="unstable_ratio"):
        spread.summarize_processes(good, unstable_ratio=0.9)
