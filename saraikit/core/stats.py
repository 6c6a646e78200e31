"""Summaries, percentile support, bootstrap intervals and comparisons.

Every number this module returns comes with what is needed to judge it: the
sample count, a confidence interval, or a flag saying the sample is too small
to support the figure.  The decisions, and the rules they follow:

Percentile support (MLPerf LoadGen early-stopping rule)
    A tail percentile is *supported* when ``n >= min_samples_for_percentile(p)``.
    The rule is the one MLPerf LoadGen uses for its SingleStream early-stopping
    floor (``loadgen/early_stopping.cc``, ``PerformanceSummary::EarlyStopping``
    in ``loadgen/results.cc``, mlcommons/inference): the smallest ``n`` such that

        P(Binomial(n, 1 - (p - tolerance)) <= tail_samples) < 1 - confidence

    with LoadGen's defaults ``confidence = 0.99``, ``tolerance = 0`` and
    ``tail_samples = 1``.  Read it as: with ``n`` samples, the chance that at
    most one sample lands above the true p-th percentile is below 1 %.  So the
    second-largest sample is a distribution-free 99 % upper bound on the true
    percentile, and the bound does not rest on the single largest sample.
    It gives P90 = 64, P95 = 130 and P99 = 662 (LoadGen: 64 and 662).
    LoadGen's fixed-count rule for *submissions* (``n = z^2 p (1 - p) /
    margin^2``, tens of thousands of queries) is far too many for CPU models
    that take seconds per call, so we use the early-stopping floor and show a
    flag instead of hiding the figure.
    The P50 is always reported (for n >= 1) and carries a bootstrap CI.  The
    rule would ask for 11 samples at p = 0.5.

Percentile estimator
    ``numpy.percentile`` with its default linear interpolation (Hyndman & Fan
    type 7, the same as pandas and R's default), so figures match what a
    reader gets from ``df.quantile``.

Bootstrap
    Our own vectorised percentile bootstrap on a seeded
    ``numpy.random.Generator``, not ``scipy.stats.bootstrap``, because:
    (1) scipy's default BCa interval estimates its acceleration by jackknife,
    which is unreliable for the median (a non-smooth statistic) and degenerates
    on tied data (timings rounded to the clock resolution);
    (2) one small code path serves the one-sample CI, the two-sample ratio of
    medians (each group resampled independently) and the paired difference;
    (3) resamples are drawn in chunks, so memory stays bounded for n = 10^5
    samples, and a given seed always gives the same interval.
    Fewer than ``MIN_BOOTSTRAP_RESAMPLES`` (100) resamples is refused: the
    2.5 % and 97.5 % quantiles of fewer draws are mostly noise.

Minimum sample count for a median CI
    With fewer than ``min_samples_for_median_ci(confidence)`` samples (6 at
    95 %) no distribution-free interval reaches the confidence level.  Even
    ``[min, max]`` covers the median only with probability ``1 - 2 * 0.5**n``.
    A bootstrap interval there would look precise while being wrong, so the CI
    is NaN.

Comparisons
    ``compare(baseline, candidate)`` reports ``ratio = median(candidate) /
    median(baseline)``: a ratio below 1 means the candidate takes less time.
    The verdict comes from the bootstrap CI of the ratio only: "faster" if the
    upper bound is below 1, "slower" if the lower bound is above 1, otherwise
    "no significant difference".  When either group is too small for a median
    CI it is "insufficient samples".  A two-sided Mann-Whitney U p-value is
    reported beside it as a second opinion.  The verdict words assume
    lower-is-better samples such as durations, so all samples must be > 0.

Paired differences
    ``paired_bootstrap_diff(baseline, candidate)`` returns
    ``mean(candidate - baseline)`` over items measured by both systems (for
    example per-utterance WER of FP32 and INT8).  Items are resampled as pairs.

Bad input (empty, non-finite, wrong shape, out-of-range parameters) raises
:class:`~saraikit.errors.MeasurementError` with a message saying what to fix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from saraikit.core.errors import MeasurementError

__all__ = [
    "BOOTSTRAP_CHUNK_VALUES", "DEFAULT_SUPPORT_CONFIDENCE", "MIN_BOOTSTRAP_RESAMPLES", "PERCENTILE_MIN_SAMPLES",
    "TAIL_PERCENTILES", "Comparison", "ConfidenceInterval", "PairedDifference", "Summary", "as_samples", "bootstrap_ci",
    "check_confidence", "check_n_boot", "compare", "format_interval", "format_percentile", "format_summary",
    "format_value", "mean_ci", "min_samples_for_median_ci", "min_samples_for_percentile", "paired_bootstrap_diff",
    "percentile_interval", "percentile_supported", "ratio_verdict", "summaries_frame", "summarize",
]

DEFAULT_SUPPORT_CONFIDENCE = 0.99
"""Confidence of the percentile-support rule (LoadGen's early-stopping value)."""

MIN_BOOTSTRAP_RESAMPLES = 100
"""Fewest bootstrap resamples accepted."""

TAIL_PERCENTILES: dict[str, float] = {"p90": 0.90, "p95": 0.95, "p99": 0.99}
"""The tail percentiles a :class:`Summary` reports and flags."""

_ALL_PERCENTILES: dict[str, float] = {"p50": 0.50, **TAIL_PERCENTILES}

# Bound the size of one chunk of resamples (values drawn at once; saraikit.core.spread shares it).
BOOTSTRAP_CHUNK_VALUES = 2_000_000


# --------------------------------------------------------------------------
# validation


def check_confidence(confidence: float, name: str = "confidence") -> float:
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool):
        raise MeasurementError(f"{name} must be a number in (0, 1), got {confidence!r}")
    if not 0.0 < confidence < 1.0:
        raise MeasurementError(f"{name} must be in (0, 1), e.g. 0.95, got {confidence!r}")
    return float(confidence)


def check_n_boot(n_boot: int) -> int:
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool):
        raise MeasurementError(f"n_boot must be an integer, got {n_boot!r}")
    if n_boot < MIN_BOOTSTRAP_RESAMPLES:
        raise MeasurementError(f"n_boot must be at least {MIN_BOOTSTRAP_RESAMPLES} bootstrap resamples, "
                               f"got {n_boot}; fewer make the interval bounds mostly noise")
    return int(n_boot)


def _check_fraction(p: float, name: str = "p") -> float:
    if not isinstance(p, (int, float, np.floating)) or isinstance(p, bool):
        raise MeasurementError(f"{name} must be a number in (0, 1), got {p!r}")
    if not 0.0 < p < 1.0:
        raise MeasurementError(f"{name} must be a fraction in (0, 1) (0.99 for P99, not 99), got {p!r}")
    return float(p)


def as_samples(samples, name: str = "samples") -> np.ndarray:
    """Return ``samples`` as a 1-D float array, or raise MeasurementError."""
    try:
        values = np.asarray(samples, dtype=float)
    except (TypeError, ValueError) as exc:
        raise MeasurementError(f"{name} must be a sequence of numbers: {exc}") from None
    if values.ndim != 1:
        raise MeasurementError(f"{name} must be a flat sequence of numbers, got an array of shape {values.shape}")
    if values.size == 0:
        raise MeasurementError(f"{name} is empty: there is nothing to summarize")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise MeasurementError(f"{name} contains {bad.size} non-finite value(s) (NaN or inf) at index {shown}; "
                               "drop or investigate failed runs before summarizing")
    return values


# --------------------------------------------------------------------------
# percentile support


def min_samples_for_percentile(p: float, confidence: float = DEFAULT_SUPPORT_CONFIDENCE,
                               tolerance: float = 0.0, tail_samples: int = 1) -> int:
    """Smallest sample count that supports the ``p`` percentile (LoadGen rule).

    Returns the smallest ``n`` with
    ``P(Binomial(n, 1 - (p - tolerance)) <= tail_samples) < 1 - confidence``.
    ``p`` is a fraction (0.99 for P99).  ``tolerance`` is LoadGen's ``d``: it
    relaxes the target to the ``p - tolerance`` percentile.  ``tail_samples``
    is how many samples may fall above the percentile and still be ignored
    (LoadGen: 1).  Defaults give 64 for P90, 130 for P95 and 662 for P99.
    """
    p = _check_fraction(p)
    confidence = check_confidence(confidence)
    if not 0.0 <= tolerance < p:
        raise MeasurementError(f"tolerance must be in [0, p={p}), got {tolerance!r}")
    if not isinstance(tail_samples, (int, np.integer)) or tail_samples < 0:
        raise MeasurementError(f"tail_samples must be a non-negative integer, got {tail_samples!r}")
    target = p - tolerance
    # With no sample above the percentile allowed, n = ln(1-c)/ln(p) exactly;
    # it is a lower bound for every tail_samples.
    low = max(1, math.floor(math.log(1.0 - confidence) / math.log(target)))
    high = 2 * low + 10 * (tail_samples + 1)
    while True:
        counts = np.arange(low, high + 1)
        passing = sps.binom.cdf(tail_samples, counts, 1.0 - target) < 1.0 - confidence
        if passing.any():
            return int(counts[np.argmax(passing)])
        low, high = high + 1, 2 * high


PERCENTILE_MIN_SAMPLES: dict[str, int] = {
    name: min_samples_for_percentile(p) for name, p in TAIL_PERCENTILES.items()
}
"""Samples needed to support each tail percentile: p90 64, p95 130, p99 662."""


def percentile_supported(p: float, n: int, confidence: float = DEFAULT_SUPPORT_CONFIDENCE) -> bool:
    """Whether ``n`` samples support the ``p`` percentile (see module docstring)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise MeasurementError(f"n must be a non-negative sample count, got {n!r}")
    return int(n) >= min_samples_for_percentile(p, confidence)


def min_samples_for_median_ci(confidence: float = 0.95) -> int:
    """Smallest ``n`` for which ``[min, max]`` covers the median at ``confidence``.

    ``P(min <= median <= max) = 1 - 2 * 0.5**n``; below this count no
    distribution-free interval for the median reaches the confidence level.
    Gives 6 at 95 %, 8 at 99 %.
    """
    confidence = check_confidence(confidence)
    return max(2, math.ceil(1.0 + math.log2(1.0 / (1.0 - confidence))))


# --------------------------------------------------------------------------
# bootstrap


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate and its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    n_boot: int

    def contains(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)


def _bootstrap_statistics(values: np.ndarray, statistic: Callable[..., np.ndarray], n_boot: int,
                          rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` values of ``statistic`` on resamples (with replacement) of ``values``.

    ``statistic`` must accept ``axis=-1`` (numpy reductions do).  Resamples are
    drawn in chunks so that memory stays bounded for large samples.
    """
    n = values.size
    chunk = max(1, BOOTSTRAP_CHUNK_VALUES // n)
    results = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        indices = rng.integers(0, n, size=(stop - start, n))
        results[start:stop] = statistic(values[indices], axis=-1)
    return results


def percentile_interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_ci(values, statistic: Callable[..., np.ndarray] = np.median, confidence: float = 0.95,
                 n_boot: int = 2000, seed: int | None = 0, min_n: int = 2) -> ConfidenceInterval:
    """Percentile-bootstrap CI of ``statistic(values)``.

    ``statistic`` must take ``axis=-1`` (``np.median``, ``np.mean``, ...).
    With fewer than ``min_n`` values the bounds are NaN: a bootstrap of one
    value has no spread to report.  ``seed=None`` gives a non-reproducible run.
    """
    values = as_samples(values, "values")
    confidence = check_confidence(confidence)
    n_boot = check_n_boot(n_boot)
    estimate = float(statistic(values))
    if values.size < max(min_n, 1):
        return ConfidenceInterval(estimate, math.nan, math.nan, confidence, values.size, n_boot)
    rng = np.random.default_rng(seed)
    boot = _bootstrap_statistics(values, statistic, n_boot, rng)
    low, high = percentile_interval(boot, confidence)
    return ConfidenceInterval(estimate, low, high, confidence, values.size, n_boot)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean; NaNs with fewer than two values.

    For a handful of repetitions, where a percentile bootstrap would be too narrow.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return math.nan, math.nan
    low, high = sps.t.interval(confidence, values.size - 1, loc=values.mean(), scale=sps.sem(values))
    return float(low), float(high)


@dataclass(frozen=True)
class PairedDifference:
    """``mean(candidate - baseline)`` over paired items, with its bootstrap CI."""

    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int

    @property
    def significant(self) -> bool:
        """True when the CI excludes zero."""
        return bool(self.ci_low > 0.0 or self.ci_high < 0.0)


def paired_bootstrap_diff(baseline, candidate, confidence: float = 0.95, n_boot: int = 5000,
                          seed: int | None = 0) -> PairedDifference:
    """Paired bootstrap of ``mean(candidate) - mean(baseline)`` on the same items.

    ``baseline[i]`` and ``candidate[i]`` must be the same item (utterance,
    prompt) measured by both systems; items are resampled as pairs.  A
    positive ``diff`` means the candidate scores higher (for WER: worse).
    """
    baseline = as_samples(baseline, "baseline")
    candidate = as_samples(candidate, "candidate")
    if baseline.size != candidate.size:
        raise MeasurementError(f"paired samples need the same items: baseline has {baseline.size} values, "
                               f"candidate has {candidate.size}")
    interval = bootstrap_ci(candidate - baseline, np.mean, confidence, n_boot, seed)
    return PairedDifference(interval.estimate, interval.low, interval.high, interval.confidence, interval.n)


# --------------------------------------------------------------------------
# summaries


@dataclass
class Summary:
    """Descriptive statistics of one set of samples.

    ``supported`` maps "p90", "p95", "p99" to whether ``n`` reaches
    ``PERCENTILE_MIN_SAMPLES``.  ``p50_ci_low``/``p50_ci_high`` are the
    bootstrap CI of the median at ``confidence``; NaN below
    ``min_samples_for_median_ci(confidence)`` samples.  ``std`` uses ddof=1
    (NaN for one sample) and ``cv = std / mean`` (NaN when the mean is 0).
    """

    n: int
    mean: float
    std: float
    cv: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    p50_ci_low: float
    p50_ci_high: float
    unit: str
    confidence: float
    supported: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self, name: str = "") -> str:
        """One line with n, the median and its CI, and every tail percentile."""
        return format_summary(self, name)

    def __str__(self) -> str:
        return self.format()


def summarize(samples, unit: str = "ms", confidence: float = 0.95, n_boot: int = 2000, seed: int | None = 0) -> Summary:
    """Summarize ``samples``: mean, spread, percentiles, median CI and support flags."""
    values = as_samples(samples)
    confidence = check_confidence(confidence)
    n_boot = check_n_boot(n_boot)
    n = values.size
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if n > 1 else math.nan
    cv = std / mean if mean != 0.0 else math.nan
    p50, p90, p95, p99 = (float(x) for x in np.percentile(values, [50, 90, 95, 99]))
    median_ci = bootstrap_ci(values, np.median, confidence, n_boot, seed, min_n=min_samples_for_median_ci(confidence))
    supported = {name: n >= PERCENTILE_MIN_SAMPLES[name] for name in TAIL_PERCENTILES}
    return Summary(n=n, mean=mean, std=std, cv=cv, min=float(values.min()), max=float(values.max()),
                   p50=p50, p90=p90, p95=p95, p99=p99, p50_ci_low=median_ci.low, p50_ci_high=median_ci.high,
                   unit=unit, confidence=confidence, supported=supported)


# --------------------------------------------------------------------------
# formatting: the one place a percentile becomes text


def _decimals(value: float, significant: int) -> int:
    if not math.isfinite(value) or value == 0.0:
        return 0
    return max(0, significant - 1 - math.floor(math.log10(abs(value))))


def format_value(value: float, significant: int = 3, decimals: int | None = None) -> str:
    """``value`` with ``significant`` digits (or fixed ``decimals``), never in e-notation."""
    if not math.isfinite(value):
        return str(value)
    if decimals is None:
        decimals = _decimals(value, significant)
    return f"{value:.{decimals}f}"


def format_interval(estimate: float, low: float, high: float, confidence: float) -> str:
    """``"95% CI 99.6 to 100.2"``: bounds get as many decimals as the estimate."""
    reference = estimate if estimate != 0.0 else max(abs(low), abs(high))
    decimals = _decimals(reference, 3)
    return f"{confidence * 100:g}% CI {format_value(low, decimals=decimals)} to {format_value(high, decimals=decimals)}"


def format_percentile(summary: Summary, name: str) -> str:
    """``summary.<name>`` with its unit and, if unsupported, the flag.

    ``name`` is "p50", "p90", "p95" or "p99".  Returns e.g. "12.3 ms" or
    "12.3 ms (unsupported: n=20 < 662)".  Use this wherever a percentile is
    shown so the flag is never dropped.
    """
    if name not in _ALL_PERCENTILES:
        raise MeasurementError(f"unknown percentile {name!r}; expected one of {', '.join(_ALL_PERCENTILES)}")
    text = f"{format_value(getattr(summary, name))} {summary.unit}"
    if not summary.supported.get(name, True):
        text += f" (unsupported: n={summary.n} < {PERCENTILE_MIN_SAMPLES[name]})"
    return text


def format_summary(summary: Summary, name: str = "") -> str:
    """One line: n, p50 with its CI, then p90/p95/p99 through format_percentile."""
    if math.isnan(summary.p50_ci_low):
        level = f"{summary.confidence * 100:g}% CI"
        median_ci = f"{level} n/a: n={summary.n} < {min_samples_for_median_ci(summary.confidence)}"
    else:
        median_ci = format_interval(summary.p50, summary.p50_ci_low, summary.p50_ci_high, summary.confidence)
    parts = [f"n={summary.n}", f"p50 {format_percentile(summary, 'p50')} ({median_ci})"]
    parts += [f"{key} {format_percentile(summary, key)}" for key in TAIL_PERCENTILES]
    line = ", ".join(parts)
    return f"{name}: {line}" if name else line


def summaries_frame(summaries: Mapping[str, Summary]) -> pd.DataFrame:
    """One row per named summary; ``p90_unsupported`` etc. are boolean columns.

    The flag columns are True when the percentile is NOT supported, so a
    reader filtering on them sees the figures to distrust.
    """
    rows = {}
    for name, summary in summaries.items():
        row = summary.to_dict()
        supported = row.pop("supported")
        for key in TAIL_PERCENTILES:
            row[f"{key}_unsupported"] = not supported.get(key, False)
        rows[name] = row
    columns = ["n", "unit", "mean", "std", "cv", "min", "max", "p50", "p50_ci_low", "p50_ci_high", "confidence",
               "p90", "p95", "p99", "p90_unsupported", "p95_unsupported", "p99_unsupported"]
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    frame.index.name = "name"
    return frame


# --------------------------------------------------------------------------
# comparisons


@dataclass(frozen=True)
class Comparison:
    """Candidate against baseline: ``ratio = median(candidate) / median(baseline)``.

    ``ratio < 1`` means the candidate takes less time.  ``verdict`` is
    "faster", "slower", "no significant difference" (decided by the ratio's
    bootstrap CI) or "insufficient samples".  ``p_value`` is the two-sided
    Mann-Whitney U test, reported as a second opinion.
    """

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    n_baseline: int
    n_candidate: int
    baseline_median: float
    candidate_median: float
    confidence: float

    def format(self) -> str:
        interval = format_interval(self.ratio, self.ci_low, self.ci_high, self.confidence)
        return (f"{self.verdict}: ratio {format_value(self.ratio)} ({interval}), "
                f"Mann-Whitney p={self.p_value:.3g}, n={self.n_baseline} vs {self.n_candidate}")


def ratio_verdict(ci_low: float, ci_high: float) -> str:
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "insufficient samples"
    if ci_high < 1.0:
        return "faster"
    if ci_low > 1.0:
        return "slower"
    return "no significant difference"


def compare(baseline, candidate, confidence: float = 0.95, n_boot: int = 5000, seed: int | None = 0) -> Comparison:
    """Compare two independent sets of durations by the ratio of their medians.

    Each group is resampled independently; the CI is the percentile interval
    of ``median(candidate*) / median(baseline*)``.
    """
    baseline = as_samples(baseline, "baseline")
    candidate = as_samples(candidate, "candidate")
    for name, values in (("baseline", baseline), ("candidate", candidate)):
        if np.any(values <= 0.0):
            raise MeasurementError(f"{name} has values <= 0; a ratio of medians needs positive durations")
    confidence = check_confidence(confidence)
    n_boot = check_n_boot(n_boot)
    baseline_median = float(np.median(baseline))
    candidate_median = float(np.median(candidate))
    ratio = candidate_median / baseline_median
    p_value = float(sps.mannwhitneyu(baseline, candidate, alternative="two-sided").pvalue)
    min_n = min_samples_for_median_ci(confidence)
    if min(baseline.size, candidate.size) < min_n:
        ci_low = ci_high = math.nan
    else:
        rng = np.random.default_rng(seed)
        boot_baseline = _bootstrap_statistics(baseline, np.median, n_boot, rng)
        boot_candidate = _bootstrap_statistics(candidate, np.median, n_boot, rng)
        ci_low, ci_high = percentile_interval(boot_candidate / boot_baseline, confidence)
    return Comparison(ratio=ratio, ci_low=ci_low, ci_high=ci_high, p_value=p_value,
                      verdict=ratio_verdict(ci_low, ci_high), n_baseline=baseline.size, n_candidate=candidate.size,
                      baseline_median=baseline_median, candidate_median=candidate_median, confidence=confidence)
