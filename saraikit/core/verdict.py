"""A figure against a target: one rule and one vocabulary for the whole workbook.

- ``pass``: the whole confidence interval is on the good side of the target;
- ``fail``: the whole interval is on the bad side;
- ``inconclusive``: the interval straddles the target.

A figure without an interval is never passed or failed: :func:`judge` raises
for it, and tables that must show every row use :func:`judge_or_not`, which
writes :data:`NOT_JUDGED` instead. A point estimate alone says nothing about
what a rerun would give.

Seed 004's model-selection scenarios are defined here once, on the same rule:

- **A**: the candidate passes the target: use it.
- **B**: the best candidate fails even the ceiling (its whole interval above
  it, for a lower-is-better figure): nothing is viable for real time; look for
  a lighter stack.
- **C**: the best candidate fails the target but passes the ceiling: better,
  not enough; optimise further or accept the latency knowingly.
- **borderline**: an interval straddles the target or the ceiling: measure
  more before deciding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from saraikit.core.errors import MeasurementError

VERDICTS = ("pass", "fail", "inconclusive")
NOT_JUDGED = "no interval: not judged"
DIRECTIONS = ("lower", "higher")


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def judge(value: float, ci_low: float | None, ci_high: float | None, target: float, better: str = "lower") -> str:
    """``pass`` / ``fail`` / ``inconclusive`` from the interval; raises without one."""
    if better not in DIRECTIONS:
        raise MeasurementError(f"better must be one of {DIRECTIONS}, got {better!r}")
    if _missing(target):
        raise MeasurementError("a verdict needs a target")
    if _missing(ci_low) or _missing(ci_high):
        raise MeasurementError(f"a verdict needs a confidence interval: value {value!r} against target {target!r} "
                               "has none (a single number is never passed or failed)")
    if ci_low > ci_high:
        raise MeasurementError(f"confidence interval {ci_low!r} to {ci_high!r} is upside down")
    if better == "lower":
        good, bad = ci_high <= target, ci_low > target
    else:
        good, bad = ci_low >= target, ci_high < target
    return "pass" if good else ("fail" if bad else "inconclusive")


def judge_or_not(value, ci_low, ci_high, target, better: str = "lower") -> str:
    """For tables: ``""`` without a target, :data:`NOT_JUDGED` without an interval, else :func:`judge`."""
    if _missing(target):
        return ""
    if _missing(value):
        return "missing"
    if _missing(ci_low) or _missing(ci_high):
        return NOT_JUDGED
    return judge(value, ci_low, ci_high, target, better)


@dataclass(frozen=True)
class Scenario:
    letter: str  # "A", "B", "C" or "borderline"
    meaning: str


SCENARIOS = {
    "A": "meets the target: use it",
    "B": "above the ceiling: not viable for real time; look for a lighter stack",
    "C": "better than the ceiling but misses the target: optimise further or accept the latency knowingly",
    "borderline": "an interval straddles the target or the ceiling: measure more before deciding",
}


def scenario(value: float, ci_low: float, ci_high: float, target: float, ceiling: float) -> Scenario:
    """Seed 004's scenario for the best candidate's lower-is-better figure (P50 latency)."""
    if not target < ceiling:
        raise MeasurementError(f"the ceiling ({ceiling!r}) must be above the target ({target!r})")
    versus_target = judge(value, ci_low, ci_high, target, "lower")
    versus_ceiling = judge(value, ci_low, ci_high, ceiling, "lower")
    if versus_target == "pass":
        letter = "A"
    elif versus_ceiling == "fail":
        letter = "B"
    elif versus_target == "fail" and versus_ceiling == "pass":
        letter = "C"
    else:
        letter = "borderline"
    return Scenario(letter, SCENARIOS[letter])


def goal_sentence(value, ci_low, ci_high, target, better: str = "lower", unit: str = "ms") -> str:
    """A conclusion's words for a figure against its goal, from :func:`judge_or_not` (never rounded into a pass)."""
    verdict = judge_or_not(value, ci_low, ci_high, target, better)
    unit = f" {unit}" if unit else ""
    goal = f"the {target:g}{unit} goal"
    if verdict == "pass":
        return f"passes {goal} (the whole 95% CI is on the good side)"
    if verdict == "fail":
        gap = value - target if better == "lower" else target - value
        return f"fails {goal} by {abs(gap):.3g}{unit} ({value / target:.2f}x the goal; the whole 95% CI is on the bad side)"
    if verdict == NOT_JUDGED:
        return f"is not judged against {goal}: the figure has no confidence interval"
    if verdict == "missing":
        return f"was not measured, so it is not judged against {goal}"
    return f"is inconclusive against {goal} (its 95% CI straddles it)"
