"""A/A check: one configuration compared with itself, to count false "differences".

Any comparison of a configuration with itself that says "faster" or "slower"
is a false positive. At 95 % confidence a calibrated method calls about 1 in
20 such comparisons significant; a method that ignores the variance between
processes calls many more, because each side is measured in its own process
and processes differ (see :mod:`saraikit.core.spread`).

Each repetition runs both ways on the same machine, interleaved:

- new: the grid-search path, :func:`saraikit.experiments.grid.exhaustive` on
  ``[config, config]`` with ``processes`` rounds, then the paired-by-round
  comparison (:func:`saraikit.experiments.grid.compare_by_round`);
- old (``old_way=True``): the path before process spreading, one process per
  side with the whole plan, compared by
  :func:`saraikit.core.stats.compare` on the pooled samples.

The result holds one row per repetition and the count of significant calls
of each method. A test should check the table's shape and verdict values,
not the rate: with a 5 % false-positive rate a strict rate check is flaky.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from saraikit.core import stats
from saraikit.core.errors import MeasurementError
from saraikit.core.progress import progress as tqdm
from saraikit.experiments import grid
from saraikit.experiments.bench import DEFAULT_PROCESSES

SIGNIFICANT = ("faster", "slower")
"""Verdicts that claim a difference: in an A/A check, false positives."""


@dataclass
class AACheck:
    """The repetitions of an A/A check: ``table`` has one row per repetition."""

    table: pd.DataFrame
    processes: int
    plan: dict

    def significant(self, verdict_column: str = "verdict") -> int:
        """How many comparisons in ``verdict_column`` ("verdict" or "old_verdict") claimed a difference."""
        return int(self.table[verdict_column].isin(SIGNIFICANT).sum())

    def rates(self) -> pd.DataFrame:
        """One row per method: comparisons, how many were called significant, and the rate."""
        methods = {f"paired by round, {self.processes} processes each": "verdict",
                   "pooled samples, one process each (old)": "old_verdict"}
        rows = [{"method": name, "comparisons": len(self.table), "significant": self.significant(column),
                 "false_positive_rate": self.significant(column) / len(self.table)}
                for name, column in methods.items() if column in self.table]
        return pd.DataFrame(rows)


def aa_compare(measure: grid.MeasureFn, config: dict | None = None, plan: dict | None = None,
               repetitions: int = 20, processes: int = DEFAULT_PROCESSES, old_way: bool = True,
               progress: bool = False) -> AACheck:
    """Compare ``config`` with itself ``repetitions`` times through the grid path (and the old way)."""
    if not isinstance(repetitions, int) or repetitions < 1:
        raise MeasurementError(f"repetitions must be an integer >= 1, got {repetitions!r}")
    config, plan = dict(config or {}), dict(plan or {})
    rows = []
    for repetition in tqdm(range(1, repetitions + 1), desc="A/A check", disable=not progress):
        first, second = grid.exhaustive([config, dict(config)], measure, plan, processes).candidates
        failed = first.failed or second.failed
        if failed:
            raise MeasurementError(f"A/A repetition {repetition} failed, the check needs both sides: {failed}")
        new = grid.compare_by_round(first, second)
        row = {"repetition": repetition, "ratio": new.ratio, "ci_low": new.ci_low, "ci_high": new.ci_high,
               "p_value": new.p_value, "verdict": new.verdict, "rounds": new.k,
               "unstable": first.spread_summary().unstable or second.spread_summary().unstable}
        if old_way:
            row.update(_old_way(measure, config, plan))
        rows.append(row)
    return AACheck(pd.DataFrame(rows), processes, plan)


def _old_way(measure: grid.MeasureFn, config: dict, plan: dict) -> dict:
    """One process per side with the whole plan, pooled samples compared by ``stats.compare``."""
    try:
        baseline, _ = grid.unpack_measurement(measure(config, {**plan, "round": 1}))
        candidate, _ = grid.unpack_measurement(measure(dict(config), {**plan, "round": 1}))
    except grid.MeasurementFailed as exc:
        raise MeasurementError(f"A/A check, old way: a process failed: {exc}") from None
    old = stats.compare(baseline, candidate)
    return {"old_ratio": old.ratio, "old_ci_low": old.ci_low, "old_ci_high": old.ci_high,
            "old_p_value": old.p_value, "old_verdict": old.verdict}


def aa_check(model_path: str, config: dict | None = None, repetitions: int = 20,
             processes: int = DEFAULT_PROCESSES, plan: dict | None = None, dims: dict | None = None,
             values: dict | None = None, feeds: dict | None = None, timeout_s: float = 600.0,
             old_way: bool = True, progress: bool = False) -> AACheck:
    """The A/A check on a model: every process fresh, nothing stored or reused (see module docstring)."""
    measure = grid.isolated_measure(model_path, None, None, "aa_check", None, target=None, dims=dims,
                                    values=values, feeds=feeds, timeout_s=timeout_s)
    return aa_compare(measure, config, plan, repetitions, processes, old_way, progress)
