"""Statistics for samples that come from several processes.

Why: a process is a draw of its own. Thread placement, memory layout, the
allocator's arenas and the CPU's frequency state are fixed when a process
starts and differ from one process to the next, so the samples of one process
are not independent draws of "the configuration": four fresh processes of the
same ``saraikit bench dnsmos-p808`` run gave P50 6.70, 6.44, 5.20 and 5.15 ms,
each with a 95 % CI about 0.03 ms wide. A CI computed from the samples of one
process describes that process, not the configuration. Like pyperf, which
spreads its samples over many worker processes, saraikit measures a
configuration in several fresh processes and treats the *process* as the unit
of replication.

One configuration: :func:`summarize_processes`
    The estimate is the median of all samples. Its CI is a two-level
    (hierarchical) percentile bootstrap: resample the processes with
    replacement, then resample the samples within each chosen process, and
    take the median of the pooled resample. Both levels of variation enter the
    interval, so with few processes that disagree the interval is wide, which
    is the truth: three processes cannot pin a location that moves by 20 %
    from one process to the next. With one process the interval reduces to the
    ordinary bootstrap of that process (computed by
    :func:`saraikit.core.stats.bootstrap_ci`, so a single-process figure is
    unchanged) and says nothing about other processes.
    The bootstrap is vectorised (one array of draws per chunk of resamples,
    chunks bounded by ``saraikit.core.stats.BOOTSTRAP_CHUNK_VALUES``) and seeded.
    Limit, stated plainly: when drift between processes dominates, a
    percentile bootstrap over ``k`` processes cannot reach beyond the outer
    process medians, so it covers the configuration's median with
    probability near ``1 - 2 * 0.5**k``, not 95 %. A simulation (process
    sd 8 %, 60 samples each) gave 72 % coverage at k = 3, 89 % at k = 5 and
    94 % at k = 10. It is still far closer than a single-process CI (which
    misses whenever another process lands elsewhere); decisions between
    configurations use :func:`compare_paired`, whose t-interval is calibrated.

Unstable flag
    A configuration is *unstable* when ``max / min`` of its process medians
    exceeds ``UNSTABLE_RATIO`` (1.10). pyperf warns when a benchmark's
    standard deviation exceeds 10 % of its mean; we use the same 10 % on the
    process medians, which are robust to outliers inside a process. 10 % is
    also the size of the effects this project tunes for (session options,
    INT8 variants typically move P50 by 5-30 %): when processes of one
    configuration already disagree by that much, a difference between two
    configurations measured in one process each cannot be told from process
    drift. The flag needs at least two processes; with one it is False and
    ``spread_ratio`` is 1 by construction.

Two configurations: :func:`compare_paired`
    Round ``r`` of the baseline and round ``r`` of the candidate ran back to
    back in fresh processes, so slow drift (thermal state, other load) hits
    both alike. The statistic is the per-round ratio of process medians
    ``candidate_r / baseline_r``; the estimate is their geometric mean. The
    CI is a Student-t interval on the log ratios with ``k - 1`` degrees of
    freedom, and the p-value is the paired t-test's. Why t and not a
    bootstrap: with 3-5 rounds a bootstrap over rounds has only a handful of
    distinct resamples and its percentile interval is too narrow (it misses
    far more often than 5 %), whereas the t interval is calibrated whenever
    the rounds are independent and the log ratios roughly normal (process
    medians are averages of many samples; their log ratios are close to
    normal). The verdict uses :func:`saraikit.core.stats.ratio_verdict`:
    "faster" when the whole CI is below 1, "slower" when above, otherwise "no
    significant difference"; fewer than 2 rounds is "insufficient samples"
    (no spread between rounds to judge by).

Bad input (no process, an empty process, non-finite or non-positive samples,
repeated or mismatched rounds) raises
:class:`~saraikit.core.errors.MeasurementError` saying what to fix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from saraikit.core import stats
from saraikit.core.errors import MeasurementError

__all__ = [
    "UNSTABLE_RATIO",
    "VERDICTS",
    "PairedComparison",
    "ProcessSamples",
    "SpreadSummary",
    "compare_paired",
    "flatten",
    "summarize_processes",
]

UNSTABLE_RATIO = 1.10
"""``max / min`` of process medians above which a configuration is flagged unstable."""

VERDICTS = ("faster", "slower", "no significant difference", "insufficient samples")
"""Every verdict a comparison of durations gives (here and in :func:`saraikit.core.stats.compare`)."""


@dataclass(frozen=True)
class ProcessSamples:
    """The samples (ms) of one fresh process, and the round it ran in (1-based)."""

    samples_ms: tuple[float, ...]
    round: int

    def __post_init__(self):
        object.__setattr__(self, "samples_ms", tuple(float(v) for v in self.samples_ms))

    @property
    def median(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def n(self) -> int:
        return len(self.samples_ms)


def flatten(processes: Sequence[ProcessSamples]) -> list[float]:
    """All samples of all processes, in round order (what a single-list consumer expects)."""
    return [v for p in sorted(processes, key=lambda p: p.round) for v in p.samples_ms]


@dataclass(frozen=True)
class SpreadSummary:
    """One configuration over its processes: median, hierarchical CI and process spread.

    ``median`` is the median of all ``n`` samples; ``ci_low``/``ci_high`` its
    hierarchical bootstrap CI (NaN below
    :func:`saraikit.core.stats.min_samples_for_median_ci` samples).
    ``process_medians`` follow ``rounds``. ``spread_ratio`` is ``max / min``
    of the process medians and ``unstable`` says it exceeds ``unstable_limit``.
    """

    median: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    k: int
    rounds: tuple[int, ...]
    process_medians: tuple[float, ...]
    process_median_min: float
    process_median_max: float
    spread_ratio: float
    unstable: bool
    unstable_limit: float
    n_boot: int

    def to_dict(self) -> dict:
        return {**asdict(self), "rounds": list(self.rounds), "process_medians": list(self.process_medians)}

    def format_processes(self, unit: str = "ms") -> str:
        """``"3 processes, medians 6.70 / 6.44 / 5.20 ms, max/min 1.29: UNSTABLE (> 1.10)"``."""
        medians = " / ".join(stats.format_value(m) for m in self.process_medians)
        text = f"{self.k} process{'es' if self.k != 1 else ''}, median{'s' if self.k != 1 else ''} {medians} {unit}"
        if self.k < 2:
            return text + ", spread between processes unknown (one process)"
        state = f"UNSTABLE (> {self.unstable_limit:.2f})" if self.unstable else f"stable (<= {self.unstable_limit:.2f})"
        return f"{text}, max/min {self.spread_ratio:.2f}: {state}"

    def format(self, unit: str = "ms") -> str:
        """``"p50 5.87 ms (95% CI 5.2 to 6.7, hierarchical, n=300); 3 processes, ..."``."""
        if math.isnan(self.ci_low):
            ci = f"{self.confidence * 100:g}% CI n/a: n={self.n}"
        else:
            ci = f"{stats.format_interval(self.median, self.ci_low, self.ci_high, self.confidence)}, n={self.n}"
        return f"p50 {stats.format_value(self.median)} {unit} ({ci}, hierarchical); {self.format_processes(unit)}"


def _check_processes(processes: Sequence[ProcessSamples], name: str) -> list[ProcessSamples]:
    processes = list(processes or [])
    if not processes:
        raise MeasurementError(f"{name} has no process: measure at least one process before summarizing")
    rounds = [p.round for p in processes]
    repeated = sorted({r for r in rounds if rounds.count(r) > 1})
    if repeated:
        raise MeasurementError(f"{name} has more than one process in round(s) {repeated}; one process per round")
    for p in processes:
        values = stats.as_samples(p.samples_ms, f"{name} round {p.round}")
        if np.any(values <= 0.0):
            raise MeasurementError(f"{name} round {p.round} has durations <= 0; latencies must be positive")
    return sorted(processes, key=lambda p: p.round)


def _hierarchical_medians(groups: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap medians: processes resampled with replacement, then samples within each chosen one.

    Draws are vectorised over a chunk of resamples: each of the ``k`` slots
    draws ``width`` (the largest process size) uniform positions that are
    scaled to the chosen process's size; positions beyond that size are
    masked, so every chosen process contributes exactly its own sample count.
    """
    k = len(groups)
    sizes = np.array([g.size for g in groups])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    values = np.concatenate(groups)
    width = int(sizes.max())
    equal = bool((sizes == width).all())
    medians = np.empty(n_boot)
    chunk = max(1, stats.BOOTSTRAP_CHUNK_VALUES // (k * width))  # the memory bound of saraikit.core.stats
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        chosen = rng.integers(0, k, size=(stop - start, k))
        size = sizes[chosen][..., None]
        positions = (rng.random((stop - start, k, width)) * size).astype(np.int64)
        draws = values[offsets[chosen][..., None] + positions]
        if equal:
            medians[start:stop] = np.median(draws.reshape(stop - start, -1), axis=1)
        else:
            draws = np.where(np.arange(width) < size, draws, np.nan)
            medians[start:stop] = np.nanmedian(draws.reshape(stop - start, -1), axis=1)
    return medians


def summarize_processes(processes: Sequence[ProcessSamples], confidence: float = 0.95, n_boot: int = 2000,
                        seed: int | None = 0, unstable_ratio: float = UNSTABLE_RATIO) -> SpreadSummary:
    """Median of all samples, its hierarchical bootstrap CI, and the spread of the process medians."""
    processes = _check_processes(processes, "processes")
    confidence = stats.check_confidence(confidence)
    n_boot = stats.check_n_boot(n_boot)
    if not unstable_ratio >= 1.0:
        raise MeasurementError(f"unstable_ratio is a max/min ratio and must be >= 1, got {unstable_ratio!r}")
    groups = [np.asarray(p.samples_ms, dtype=float) for p in processes]
    pooled = np.concatenate(groups)
    ci_low = ci_high = math.nan
    if len(groups) == 1:  # the ordinary bootstrap, draw for draw (a single-process figure stays as it was)
        interval = stats.bootstrap_ci(pooled, np.median, confidence, n_boot, seed,
                                      min_n=stats.min_samples_for_median_ci(confidence))
        ci_low, ci_high = interval.low, interval.high
    elif pooled.size >= stats.min_samples_for_median_ci(confidence):
        boot = _hierarchical_medians(groups, n_boot, np.random.default_rng(seed))
        ci_low, ci_high = stats.percentile_interval(boot, confidence)
    medians = tuple(float(np.median(g)) for g in groups)
    low, high = min(medians), max(medians)
    ratio = high / low
    return SpreadSummary(
        median=float(np.median(pooled)), ci_low=ci_low, ci_high=ci_high, confidence=confidence,
        n=int(pooled.size), k=len(groups), rounds=tuple(p.round for p in processes), process_medians=medians,
        process_median_min=low, process_median_max=high, spread_ratio=ratio,
        unstable=bool(len(groups) > 1 and ratio > unstable_ratio), unstable_limit=float(unstable_ratio),
        n_boot=n_boot)


@dataclass(frozen=True)
class PairedComparison:
    """Candidate against baseline, paired by round: ``ratio`` = geometric mean of per-round ratios.

    ``ratio < 1`` means the candidate takes less time. ``round_ratios`` are
    ``candidate median / baseline median`` of each round in ``rounds``.
    ``ci_low``/``ci_high`` are the Student-t interval (``rounds - 1``
    degrees of freedom) mapped back from the log scale; ``p_value`` is the
    two-sided paired t-test. Both are NaN with fewer than 2 rounds.
    """

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    rounds: tuple[int, ...]
    round_ratios: tuple[float, ...]
    baseline_median: float
    candidate_median: float
    confidence: float

    @property
    def k(self) -> int:
        return len(self.rounds)

    def to_dict(self) -> dict:
        return {**asdict(self), "rounds": list(self.rounds), "round_ratios": list(self.round_ratios)}

    def format(self) -> str:
        return (f"{self.verdict}: ratio {stats.format_value(self.ratio)} "
                f"({stats.format_interval(self.ratio, self.ci_low, self.ci_high, self.confidence)}), "
                f"paired t-test p={self.p_value:.3g}, k={self.k} rounds")


def _log_ratio_interval(logs: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """``(low, high, p_value)`` of the mean log ratio: Student-t with ``k - 1`` degrees of freedom."""
    k = logs.size
    mean = float(logs.mean())
    se = float(logs.std(ddof=1)) / math.sqrt(k)
    if se == 0.0:  # every round gave the same ratio: no spread to widen the interval
        return mean, mean, 1.0 if mean == 0.0 else 0.0
    t_crit = float(sps.t.ppf(0.5 + confidence / 2.0, k - 1))
    p_value = float(2.0 * sps.t.sf(abs(mean) / se, k - 1))
    return mean - t_crit * se, mean + t_crit * se, p_value


def compare_paired(baseline: Sequence[ProcessSamples], candidate: Sequence[ProcessSamples],
                   confidence: float = 0.95) -> PairedComparison:
    """Compare two configurations measured in the same rounds, paired by round (see module docstring)."""
    baseline = _check_processes(baseline, "baseline")
    candidate = _check_processes(candidate, "candidate")
    confidence = stats.check_confidence(confidence)
    rounds_a, rounds_b = [p.round for p in baseline], [p.round for p in candidate]
    if rounds_a != rounds_b:
        raise MeasurementError(
            f"paired rounds differ: baseline ran in rounds {rounds_a}, candidate in {rounds_b}; "
            "compare configurations measured in the same rounds (drop the unmatched ones)")
    ratios = np.array([c.median / b.median for b, c in zip(baseline, candidate)])
    logs = np.log(ratios)
    ratio = float(np.exp(logs.mean()))
    ci_low = ci_high = p_value = math.nan
    if ratios.size >= 2:
        low, high, p_value = _log_ratio_interval(logs, confidence)
        ci_low, ci_high = math.exp(low), math.exp(high)
    return PairedComparison(
        ratio=ratio, ci_low=ci_low, ci_high=ci_high, p_value=p_value,
        verdict=stats.ratio_verdict(ci_low, ci_high), rounds=tuple(rounds_a),
        round_ratios=tuple(float(r) for r in ratios),
        baseline_median=float(np.median(flatten(baseline))),
        candidate_median=float(np.median(flatten(candidate))), confidence=confidence)
