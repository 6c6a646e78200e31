"""Tests for saraikit.stats: known distributions, support rule, coverage, comparisons."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from saraikit.core.errors import MeasurementError
from saraikit.core.stats import (
    PERCENTILE_MIN_SAMPLES,
    Comparison,
    Summary,
    bootstrap_ci,
    compare,
    format_interval,
    format_percentile,
    format_value,
    mean_ci,
    min_samples_for_median_ci,
    min_samples_for_percentile,
    paired_bootstrap_diff,
    percentile_supported,
    summaries_frame,
    summarize,
)


def normal_samples(n, mean=100.0, sd=10.0, seed=1):
    return np.random.default_rng(seed).normal(mean, sd, n)


def lognormal_latencies(n, median_ms=50.0, sigma=0.3, seed=2):
    return median_ms * np.random.default_rng(seed).lognormal(0.0, sigma, n)


# ---------------------------------------------------------------- known distributions


def test_normal_percentiles_and_median_ci():
    summary = summarize(normal_samples(10_000))
    assert summary.n == 10_000
    assert summary.p50 == pytest.approx(100.0, abs=0.5)
    assert summary.p90 == pytest.approx(100.0 + 10.0 * sps.norm.ppf(0.90), abs=0.6)  # 112.8
    assert summary.p99 == pytest.approx(100.0 + 10.0 * sps.norm.ppf(0.99), abs=1.5)  # 123.3
    assert summary.mean == pytest.approx(100.0, abs=0.5)
    assert summary.std == pytest.approx(10.0, abs=0.3)
    assert summary.cv == pytest.approx(0.10, abs=0.005)
    assert summary.p50_ci_low < 100.0 < summary.p50_ci_high
    assert summary.p50_ci_low <= summary.p50 <= summary.p50_ci_high
    # Standard error of the median: 1.2533 * sd / sqrt(n) = 0.125; 95 % width ~ 0.49.
    assert 0.3 < summary.p50_ci_high - summary.p50_ci_low < 0.7
    assert summary.supported == {"p90": True, "p95": True, "p99": True}


def test_uniform_p99():
    summary = summarize(np.random.default_rng(3).uniform(0.0, 1.0, 10_000), unit="s")
    assert summary.p99 == pytest.approx(0.99, abs=0.005)
    assert summary.p50 == pytest.approx(0.5, abs=0.02)
    assert summary.min >= 0.0 and summary.max <= 1.0


def test_small_exact_values():
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    assert summary.mean == 2.5
    assert summary.std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert summary.p50 == 2.5
    assert (summary.min, summary.max) == (1.0, 4.0)
    # Fewer than 6 samples: no 95 % distribution-free median interval exists.
    assert math.isnan(summary.p50_ci_low) and math.isnan(summary.p50_ci_high)


def test_single_sample():
    summary = summarize([7.0])
    assert summary.n == 1 and summary.p50 == 7.0 and summary.p99 == 7.0
    assert math.isnan(summary.std) and math.isnan(summary.cv)
    assert summary.supported == {"p90": False, "p95": False, "p99": False}


def test_summarize_is_deterministic_with_seed():
    samples = lognormal_latencies(200)
    first, second = summarize(samples, seed=5), summarize(samples, seed=5)
    assert first.to_dict() == second.to_dict()


# ---------------------------------------------------------------- percentile support


def test_min_samples_match_loadgen_floors():
    assert abs(min_samples_for_percentile(0.90) - 64) <= 1
    assert abs(min_samples_for_percentile(0.99) - 662) <= 1
    assert min_samples_for_percentile(0.90) == 64
    assert min_samples_for_percentile(0.95) == 130
    assert min_samples_for_percentile(0.99) == 662
    assert PERCENTILE_MIN_SAMPLES == {"p90": 64, "p95": 130, "p99": 662}


def test_min_samples_definition():
    # The returned n is the first at which P(at most one sample above P_p) < 1 %.
    for p in (0.90, 0.95, 0.99):
        n = min_samples_for_percentile(p)
        assert sps.binom.cdf(1, n, 1 - p) < 0.01 <= sps.binom.cdf(1, n - 1, 1 - p)


def test_min_samples_variants():
    # No sample allowed above: n = ceil(ln(1 - c) / ln(p)) (LoadGen h_min(t=0, p99) = 459).
    assert min_samples_for_percentile(0.99, tail_samples=0) == 459
    assert min_samples_for_percentile(0.90, tail_samples=0) == math.ceil(math.log(0.01) / math.log(0.9))
    # A tolerance relaxes the target, lower confidence asks for fewer samples.
    assert min_samples_for_percentile(0.99, tolerance=0.005) < 662
    assert min_samples_for_percentile(0.99, confidence=0.95) < 662
    assert min_samples_for_percentile(0.999) > 10 * min_samples_for_percentile(0.99) - 1000


def test_percentile_supported():
    assert percentile_supported(0.9, 20) is False
    assert percentile_supported(0.9, 100) is True
    assert percentile_supported(0.9, 63) is False
    assert percentile_supported(0.9, 64) is True
    assert percentile_supported(0.99, 661) is False
    assert percentile_supported(0.99, 662) is True


def test_small_summary_flags_tails_unsupported():
    summary = summarize(lognormal_latencies(20))
    assert summary.supported == {"p90": False, "p95": False, "p99": False}
    for name, need in (("p90", 64), ("p95", 130), ("p99", 662)):
        text = format_percentile(summary, name)
        assert f"(unsupported: n=20 < {need})" in text
        assert text.startswith(format_value(getattr(summary, name)) + " ms")
    assert "unsupported" not in format_percentile(summary, "p50")
    line = summary.format("whisper-base encode")
    assert line.startswith("whisper-base encode: n=20, p50 ")
    assert line.count("unsupported") == 3


def test_mid_size_summary_flags_only_p99():
    summary = summarize(lognormal_latencies(200))
    assert summary.supported == {"p90": True, "p95": True, "p99": False}
    assert format_percentile(summary, "p90") == f"{format_value(summary.p90)} ms"
    assert format_percentile(summary, "p99").endswith("(unsupported: n=200 < 662)")


def test_format_value_and_percentile_text():
    assert format_value(12.345) == "12.3"
    assert format_value(1234.4) == "1234"
    assert format_value(-0.5) == "-0.500"
    assert format_value(2.0, decimals=1) == "2.0"
    assert format_value(0.012345) == "0.0123"
    assert format_value(0.0) == "0"
    summary = summarize([12.3] * 10)
    assert format_percentile(summary, "p50") == "12.3 ms"
    assert format_percentile(summary, "p99") == "12.3 ms (unsupported: n=10 < 662)"
    assert format_interval(99.91, 99.648, 100.159, 0.95) == "95% CI 99.6 to 100.2"
    assert format_interval(0.957, 0.88, 1.12, 0.9) == "90% CI 0.880 to 1.120"
    with pytest.raises(MeasurementError, match="unknown percentile 'p42'"):
        format_percentile(summary, "p42")


def test_median_ci_minimum():
    assert min_samples_for_median_ci(0.95) == 6
    assert min_samples_for_median_ci(0.99) == 8
    assert math.isnan(summarize(normal_samples(5)).p50_ci_low)
    assert not math.isnan(summarize(normal_samples(6)).p50_ci_low)
    assert "95% CI n/a: n=5 < 6" in summarize(normal_samples(5)).format()


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci_coverage_of_median():
    """The 95 % CI of the median covers the true median in about 95 % of samples."""
    rng = np.random.default_rng(11)
    true_median = 1.0  # lognormal(0, 0.5): median exp(0) = 1
    repeats = 200
    covered = 0
    for i in range(repeats):
        sample = rng.lognormal(0.0, 0.5, 50)
        interval = bootstrap_ci(sample, np.median, confidence=0.95, n_boot=500, seed=i)
        covered += interval.contains(true_median)
    assert 0.90 <= covered / repeats <= 0.99


def test_bootstrap_ci_of_mean_matches_normal_theory():
    sample = normal_samples(2_000)
    interval = bootstrap_ci(sample, np.mean, n_boot=2000, seed=0)
    half_width = 1.96 * np.std(sample, ddof=1) / math.sqrt(sample.size)  # 0.44
    assert interval.estimate == pytest.approx(np.mean(sample))
    assert interval.high - interval.low == pytest.approx(2 * half_width, rel=0.1)
    assert interval.n == 2_000 and interval.n_boot == 2000 and interval.confidence == 0.95


def test_bootstrap_ci_seeded_and_constant_data():
    sample = lognormal_latencies(100)
    assert bootstrap_ci(sample, seed=3) == bootstrap_ci(sample, seed=3)
    assert bootstrap_ci(sample, seed=3) != bootstrap_ci(sample, seed=4)
    flat = bootstrap_ci([5.0] * 30)
    assert (flat.low, flat.estimate, flat.high) == (5.0, 5.0, 5.0)
    single = bootstrap_ci([5.0])
    assert single.estimate == 5.0 and math.isnan(single.low) and math.isnan(single.high)


def test_paired_bootstrap_diff_detects_shift():
    rng = np.random.default_rng(21)
    baseline_wer = rng.uniform(0.0, 0.3, 300)
    candidate_wer = baseline_wer + 0.02 + rng.normal(0.0, 0.01, 300)
    result = paired_bootstrap_diff(baseline_wer, candidate_wer, seed=0)
    assert result.diff == pytest.approx(np.mean(candidate_wer - baseline_wer))
    assert result.diff == pytest.approx(0.02, abs=0.003)
    assert 0.0 < result.ci_low < result.diff < result.ci_high
    assert result.significant and result.n == 300


def test_paired_bootstrap_diff_no_shift():
    rng = np.random.default_rng(22)
    baseline_wer = rng.uniform(0.0, 0.3, 300)
    candidate_wer = baseline_wer + rng.normal(0.0, 0.01, 300)
    result = paired_bootstrap_diff(baseline_wer, candidate_wer, seed=0)
    assert result.ci_low < 0.0 < result.ci_high
    assert not result.significant
    # Pairing matters: the paired CI is far narrower than the spread between items.
    assert result.ci_high - result.ci_low < 0.005


def test_paired_bootstrap_diff_needs_same_items():
    with pytest.raises(MeasurementError, match="baseline has 3 values, candidate has 2"):
        paired_bootstrap_diff([0.1, 0.2, 0.3], [0.1, 0.2])


# ---------------------------------------------------------------- compare


def test_compare_slower():
    baseline = lognormal_latencies(100, seed=31)
    result = compare(baseline, baseline * 1.5)
    assert isinstance(result, Comparison)
    assert result.ratio == pytest.approx(1.5)
    assert result.ci_low > 1.0
    assert result.ci_low < 1.5 < result.ci_high
    assert result.verdict == "slower"
    assert result.p_value < 0.001
    assert (result.n_baseline, result.n_candidate) == (100, 100)
    assert result.format().startswith(
        f"slower: ratio 1.50 (95% CI {result.ci_low:.2f} to {result.ci_high:.2f}), Mann-Whitney p="
    )


def test_compare_faster():
    baseline = lognormal_latencies(100, seed=32)
    result = compare(baseline, baseline * 0.7)
    assert result.ratio == pytest.approx(0.7)
    assert result.ci_high < 1.0
    assert result.verdict == "faster"


def test_compare_same_distribution():
    baseline = lognormal_latencies(100, seed=33)
    candidate = lognormal_latencies(80, seed=34)
    result = compare(baseline, candidate)
    assert result.ci_low < 1.0 < result.ci_high
    assert result.verdict == "no significant difference"
    assert result.p_value > 0.05
    assert (result.n_baseline, result.n_candidate) == (100, 80)
    assert result.baseline_median == pytest.approx(np.median(baseline))
    assert result.candidate_median == pytest.approx(np.median(candidate))


def test_compare_too_few_samples():
    result = compare([10.0, 11.0, 12.0], [20.0, 21.0, 22.0])
    assert result.ratio == pytest.approx(21.0 / 11.0)
    assert math.isnan(result.ci_low) and math.isnan(result.ci_high)
    assert result.verdict == "insufficient samples"


def test_compare_rejects_non_positive_durations():
    with pytest.raises(MeasurementError, match="baseline has values <= 0"):
        compare([0.0, 1.0, 2.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------- frame and dict


def test_summaries_frame_has_flag_columns():
    frame = summaries_frame({
        "small": summarize(lognormal_latencies(20)),
        "large": summarize(lognormal_latencies(1000)),
    })
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["small", "large"]
    assert frame.loc["small", "p90_unsupported"] and frame.loc["small", "p99_unsupported"]
    assert not frame.loc["large", "p90_unsupported"]
    assert not frame.loc["large", "p99_unsupported"]
    assert frame.loc["large", "n"] == 1000
    assert "supported" not in frame.columns


def test_to_dict_round_trip():
    summary = summarize(lognormal_latencies(50), unit="s")
    data = summary.to_dict()
    assert data["unit"] == "s" and data["n"] == 50
    assert data["supported"] == {"p90": False, "p95": False, "p99": False}
    assert Summary(**data) == summary


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("func", [summarize, bootstrap_ci])
def test_empty_samples(func):
    with pytest.raises(MeasurementError, match="is empty: there is nothing to summarize"):
        func([])


def test_nan_and_inf_samples():
    with pytest.raises(MeasurementError, match=r"1 non-finite value\(s\) \(NaN or inf\) at index 2"):
        summarize([1.0, 2.0, float("nan"), 4.0])
    with pytest.raises(MeasurementError, match="candidate contains 1 non-finite"):
        compare([1.0] * 10, [1.0] * 9 + [float("inf")])


def test_bad_shapes_and_types():
    with pytest.raises(MeasurementError, match="flat sequence of numbers"):
        summarize([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(MeasurementError, match="must be a sequence of numbers"):
        summarize(["fast", "slow"])


@pytest.mark.parametrize("n_boot", [0, -5])
def test_bad_n_boot(n_boot):
    with pytest.raises(MeasurementError, match=f"n_boot must be at least 100 bootstrap resamples, got {n_boot}"):
        summarize([1.0, 2.0, 3.0], n_boot=n_boot)
    with pytest.raises(MeasurementError, match="n_boot must be at least 100"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_boot=n_boot)


def test_bad_confidence_and_percentile():
    with pytest.raises(MeasurementError, match=r"confidence must be in \(0, 1\), e.g. 0.95, got 95"):
        summarize([1.0, 2.0], confidence=95)
    with pytest.raises(MeasurementError, match=r"0.99 for P99, not 99"):
        min_samples_for_percentile(99)
    with pytest.raises(MeasurementError, match="n must be a non-negative sample count"):
        percentile_supported(0.9, -1)


def test_mean_ci_is_a_student_t_interval():
    low, high = mean_ci([1.0, 2.0, 3.0])  # mean 2, sem 1/sqrt(3), t(0.975, 2) = 4.303
    assert low == pytest.approx(2 - 4.3027 / math.sqrt(3), abs=1e-3)
    assert high == pytest.approx(2 + 4.3027 / math.sqrt(3), abs=1e-3)
    assert all(math.isnan(v) for v in mean_ci([5.0]))
