"""Measure a callable, and track load time, first inference and memory.

The measuring loop follows optimum-benchmark and pyperf: warm up, then keep
calling until *both* a minimum iteration count and a minimum duration are met
(a cap on iterations and on duration keeps a slow model from running away).

Decisions:
- The timer is ``time.perf_counter_ns`` read immediately around the call;
  appending to a preallocated Python list is the only other work per
  iteration, so the harness adds well under a microsecond (see
  ``saraikit.bench.harness_overhead`` for the measured ratio).
- Samples are kept in milliseconds as floats: every later figure (percentiles,
  bootstrap intervals, comparisons) needs the raw values, not just a mean.
- Peak memory is ``ru_maxrss`` of the process (the true peak since the process
  started; meaningful in an isolated trial process), plus current RSS, USS and
  PSS from psutil where the OS provides them.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import psutil

from saraikit.core.errors import MeasurementError


@dataclass
class TimingPlan:
    """How long to measure: warmups, then min iterations AND min duration."""

    warmup: int = 3
    min_iterations: int = 10
    min_duration_s: float = 1.0
    max_iterations: int = 100_000
    max_duration_s: float = 600.0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        problems = []
        if not isinstance(self.warmup, int) or self.warmup < 0:
            problems.append(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not isinstance(self.min_iterations, int) or self.min_iterations < 1:
            problems.append(f"min_iterations must be an integer >= 1, got {self.min_iterations!r}")
        if not (self.min_duration_s >= 0):
            problems.append(f"min_duration_s must be >= 0 seconds, got {self.min_duration_s!r}")
        if not isinstance(self.max_iterations, int) or self.max_iterations < self.min_iterations:
            problems.append(f"max_iterations ({self.max_iterations!r}) must be >= min_iterations")
        if not (self.max_duration_s > 0):
            problems.append(f"max_duration_s must be > 0, got {self.max_duration_s!r}")
        if problems:
            raise MeasurementError("bad timing plan: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TimingPlan":
        valid = set(cls.__dataclass_fields__)
        unknown = set(values) - valid
        if unknown:
            raise MeasurementError(f"unknown timing plan keys {sorted(unknown)}; valid keys: {sorted(valid)}")
        return cls(**values)


@dataclass
class Timing:
    """Raw result of :func:`measure`."""

    samples_ms: list[float]
    warmup_ms: list[float]
    plan: TimingPlan
    wall_s: float
    stop_reason: str

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def method(self) -> dict:
        """The method, as stored next to every figure."""
        return {**self.plan.to_dict(), "n": self.n, "wall_s": round(self.wall_s, 3),
                "stop_reason": self.stop_reason, "timer": "perf_counter_ns"}


def measure(fn: Callable[[], Any], plan: TimingPlan | None = None) -> Timing:
    """Call ``fn`` ``plan.warmup`` times, then until min iterations and min duration are met."""
    plan = plan or TimingPlan()
    plan.validate()
    clock = time.perf_counter_ns
    warmup_ms = []
    for _ in range(plan.warmup):
        t0 = clock()
        fn()
        warmup_ms.append((clock() - t0) / 1e6)

    samples_ns: list[int] = []
    append = samples_ns.append
    min_ns, max_ns = plan.min_duration_s * 1e9, plan.max_duration_s * 1e9
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        append(t1 - t0)
        elapsed = t1 - start
        count = len(samples_ns)
        if count >= plan.min_iterations and elapsed >= min_ns:
            reason = "min iterations and min duration met"
            break
        if count >= plan.max_iterations:
            reason = "max_iterations reached"
            break
        if elapsed >= max_ns:
            reason = "max_duration_s reached"
            break
    wall_s = (clock() - start) / 1e9
    return Timing([s / 1e6 for s in samples_ns], warmup_ms, plan, wall_s, reason)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn`` once; return its result and the elapsed seconds (load time, first inference)."""
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


@dataclass
class MemorySnapshot:
    rss_bytes: int
    peak_rss_bytes: int
    uss_bytes: int | None = None
    pss_bytes: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def memory_snapshot() -> MemorySnapshot:
    """Current RSS, USS, PSS (where available) and the process's peak RSS so far."""
    proc = psutil.Process()
    rss = proc.memory_info().rss
    uss = pss = None
    try:
        full = proc.memory_full_info()
        uss = getattr(full, "uss", None)
        pss = getattr(full, "pss", None)
    except (psutil.AccessDenied, AttributeError):
        pass
    # ru_maxrss is sampled by the kernel at its own moments; never report a peak below what we see now.
    return MemorySnapshot(rss_bytes=rss, peak_rss_bytes=max(rss, peak_rss_bytes()), uss_bytes=uss, pss_bytes=pss)
