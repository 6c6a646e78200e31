"""Contention: CPU time other processes took while a block ran."""

import math

import pytest

from saraikit.core import contention


def test_watch_contention_counts_only_cpu_time_that_is_not_ours(monkeypatch):
    busy = iter([100.0, 130.0])  # machine-wide busy CPU seconds at start and end
    own = iter([10.0, 22.0])  # this process and its joined children
    clock = iter([0.0, 10.0])
    monkeypatch.setattr(contention, "_busy_cpu_s", lambda: next(busy))
    monkeypatch.setattr(contention, "_own_cpu_s", lambda: next(own))
    monkeypatch.setattr(contention.time, "perf_counter", lambda: next(clock))
    with contention.watch_contention() as measured:
        assert math.isnan(measured.other_cores)  # not known until the block ends
    assert measured.wall_s == 10.0 and measured.other_cpu_s == pytest.approx(18.0)
    assert measured.other_cores == pytest.approx(1.8)
    assert "1.80 of" in measured.format()
