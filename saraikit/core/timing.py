"""Measure a callable: a warmed-up timing loop, and one-shot timings (load time, first inference).

The measuring loop follows optimum-benchmark and pyperf: warm up, then keep
calling until *both* a minimum iteration count and a minimum duration are met
(a cap on iterations and on duration keeps a slow model from running away).

Decisions:
- The timer is ``time.perf_counter_ns`` read immediately around the call;
  appending to a preallocated Python list is the only other work per
  iteration, so the harness adds well under a microsecond (see
  ``saraikit.experiments.bench.harness_overhead`` for the measured ratio).
- Samples are kept in milliseconds as floats: every later figure (percentiles,
  bootstrap intervals, comparisons) needs the raw values, not just a mean.
- A plan read from a dict goes through the one strict config loader
  (``saraikit.core.config``): an unknown key is an error, never ignored.
  Memory is measured by ``saraikit.core.memory``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from saraikit.core.config import StrictConfig
from saraikit.core.errors import MeasurementError, SaraikitError


@dataclass
class TimingPlan(StrictConfig):
    """How long to measure: warmups, then min iterations AND min duration."""

    CONFIG_ERROR: ClassVar[type[SaraikitError]] = MeasurementError
    CONFIG_LABEL: ClassVar[str] = "timing plan"

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
