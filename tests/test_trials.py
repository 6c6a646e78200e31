import pytest

from saraikit.core.errors import MeasurementError
from saraikit.core.trials import run_isolated

import helpers


def test_ok_trial_returns_value_from_another_process():
    import os

    result = run_isolated(os.getpid, timeout_s=60)
    assert result.status == "ok"
    assert isinstance(result.value, int) and result.value != os.getpid()


def test_value_round_trips():
    result = run_isolated(helpers.worker_returns, {"p50": 12.5, "n": 3}, timeout_s=60)
    assert result.ok and result.value == {"p50": 12.5, "n": 3}


def test_exception_is_recorded_with_its_message():
    result = run_isolated(helpers.worker_raises, "model exploded", timeout_s=60)
    assert result.status == "error"
    assert "RuntimeError: model exploded" in result.error
    assert result.reason().endswith("model exploded")


def test_segfault_is_recorded_as_crash():
    result = run_isolated(helpers.worker_segfaults, timeout_s=60)
    assert result.status == "crashed"
    assert "SIGSEGV" in result.error


def test_exit_without_result_is_recorded_as_crash():
    result = run_isolated(helpers.worker_exits, 3, timeout_s=60)
    assert result.status == "crashed"
    assert "exited with code 3" in result.error and result.exitcode == 3


def test_hang_is_killed_at_timeout():
    result = run_isolated(helpers.worker_hangs, 60, timeout_s=3)
    assert result.status == "timeout"
    assert "timeout of 3 s" in result.error
    assert 3 <= result.duration_s < 20


def test_memory_limit_turns_runaway_allocation_into_failed_trial():
    result = run_isolated(helpers.worker_allocates, 4096, timeout_s=60, memory_limit_bytes=2 * 2**30)
    assert result.status == "error"
    assert "MemoryError" in result.error


@pytest.mark.parametrize("bad", [0, -1, None])
def test_bad_timeout_is_rejected(bad):
    with pytest.raises(MeasurementError, match="timeout_s must be > 0"):
        run_isolated(helpers.worker_returns, 1, timeout_s=bad)
