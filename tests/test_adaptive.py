"""The adaptive search that pays: warm trial processes, TPE over a grid, and its KPIs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from saraikit.core.errors import ConfigError
from saraikit.core.warm import WarmProcess
from saraikit.experiments import adaptive, grid


def _crash():
    os._exit(7)


def _sleep(seconds):
    import time

    time.sleep(seconds)


def test_a_warm_process_keeps_its_process_between_trials_and_is_replaced_after_a_crash_or_timeout():
    with WarmProcess() as warm:
        first, second = warm.run(os.getpid), warm.run(os.getpid)
        assert first.ok and first.value == second.value != os.getpid()  # one process, not this one
        crashed = warm.run(_crash)
        assert crashed.status == "crashed" and "exited with code 7" in crashed.error
        timed_out = warm.run(_sleep, 5, timeout_s=0.5)
        assert timed_out.status == "timeout" and "0.5 s" in timed_out.error
        after = warm.run(os.getpid)
        assert after.ok and after.value != first.value and warm.starts == 3
        failed = warm.run(int, "not a number")
        assert failed.status == "error" and "ValueError" in failed.error and warm.run(os.getpid).value == after.value
        warm.restart()
        assert warm.run(os.getpid).value != after.value  # a new round gets a new process


def synthetic(medians: dict, calls: list, seed: int = 0):
    rng = np.random.default_rng(seed)

    def measure(config, plan):
        calls.append((dict(config), dict(plan)))
        key = (config["graph_optimization_level"], config["intra_op_num_threads"])
        return list(medians[key] * rng.lognormal(0, 0.03, plan.get("min_iterations", 10)))

    return measure


GRID = {"graph_optimization_level": ["BASIC", "EXTENDED", "ALL"], "intra_op_num_threads": [1, 2, 3, 4]}
MEDIANS = {(level, t): base * factor for level, base in (("BASIC", 10.0), ("EXTENDED", 9.0), ("ALL", 8.0))
           for t, factor in ((1, 2.0), (2, 1.0), (3, 1.3), (4, 1.6))}


def test_tpe_proposes_measures_each_configuration_once_and_races_the_finalists():
    calls = []
    result = adaptive.tpe_search(GRID, synthetic(MEDIANS, calls), {"min_iterations": 10}, n_trials=10, finalists=3,
                                 final_rounds=2, seed=0)
    first_round = [c for c, p in calls if p["round"] == 1]
    labels = [grid.config_label(c) for c in first_round]
    assert len(labels) == len(set(labels)) <= 10  # a repeated proposal is answered from memory
    finalists = [c for c in result.candidates if c.dropped_in_round is None]
    assert len(finalists) == 3 and all(c.rounds == 3 for c in finalists)
    assert {p["min_iterations"] for _, p in calls if p["round"] > 1} == {20, 40}  # the plan grows each round
    assert result.strategy == "tpe" and result.trials_run == len(first_round) + 3 * 2
    assert result.best().median == min(c.median for c in finalists)
    with pytest.raises(ConfigError, match="n_trials"):
        adaptive.tpe_search(GRID, synthetic(MEDIANS, []), {}, n_trials=0)


def test_the_adaptive_winner_is_judged_by_the_exhaustive_figures_of_the_same_configuration():
    configs = grid.expand(GRID)
    exhaustive = grid.exhaustive(configs, synthetic(MEDIANS, []), {"min_iterations": 30})
    halving = grid.successive_halving(configs, synthetic(MEDIANS, [], seed=1), {"min_iterations": 10})
    gap, ratio, same = adaptive.gap_and_ratio(halving, exhaustive)
    assert grid.config_label(same.config) == grid.config_label(halving.best().config)
    assert gap == pytest.approx((np.median(same.samples) / exhaustive.best().median - 1) * 100)
    assert ratio == pytest.approx(halving.wall_s / exhaustive.wall_s)
    assert halving.best().config == {"graph_optimization_level": "ALL", "intra_op_num_threads": 2} and gap == 0


def test_searches_before_and_after_the_exhaustive_one_are_judged_together():
    configs = grid.expand(GRID)
    exhaustive = grid.exhaustive(configs, synthetic(MEDIANS, []), {"min_iterations": 30})
    before = adaptive.run_adaptive("halving", configs, GRID, synthetic(MEDIANS, [], seed=1), {"min_iterations": 10}, 2)
    after = adaptive.run_adaptive("tpe", configs, GRID, synthetic(MEDIANS, [], seed=2), {"min_iterations": 10}, 2,
                                  tpe_trials=3)
    exhaustive.wall_s, before.wall_s, after.wall_s = 10.0, 3.0, 5.0
    result = adaptive.bracket([("before", before), ("after", after)], exhaustive)
    assert result.time_ratio == pytest.approx(0.4)  # mean adaptive wall time / exhaustive
    gaps = [adaptive.gap_and_ratio(r, exhaustive)[0] for r in (before, after)]
    assert result.gap_pct == pytest.approx(max(gaps))  # the worse winner decides
    assert list(result.table["search"]) == ["before", "after"]
    with pytest.raises(ConfigError, match="adaptive must be 'halving' or 'tpe'"):
        adaptive.run_adaptive("random", configs, GRID, synthetic(MEDIANS, []), {}, 2)


def test_a_measure_function_with_many_gets_each_round_at_once():
    rounds = []
    inner = synthetic(MEDIANS, [])

    def measure(config, plan):
        raise AssertionError("a measure function with .many is called per round")

    def many(configs, plan):
        rounds.append((len(configs), plan["round"]))
        return [grid.MeasurementFailed("boom") if c["intra_op_num_threads"] == 4 else inner(c, plan) for c in configs]

    measure.many = many
    result = grid.exhaustive(grid.expand(GRID), measure, {"min_iterations": 9}, processes=3)
    assert rounds == [(12, 1), (9, 2), (9, 3)]  # failed configurations are not measured again
    assert sum(1 for c in result.candidates if c.failed == "boom") == 3


@pytest.mark.integration
def test_warm_measure_runs_a_round_in_one_process_and_stores_every_trial(model_paths, tmp_store):
    run_id = tmp_store.start_run(target="t")
    measure = adaptive.warm_measure(str(model_paths["silero-vad"]), tmp_store, run_id, "silero-vad", None,
                                    experiment="warm", dims={"seq_len": 1})
    try:
        configs = grid.expand({"intra_op_num_threads": [1, 2]})
        result = grid.exhaustive(configs, measure, {"warmup": 1, "min_iterations": 20}, processes=2)
        assert measure.warm.starts == 2  # one warm process per round
        arena = {"arena_size": 64 * 2**20}
        measure(arena, {"warmup": 1, "min_iterations": 5, "round": 3})  # process-wide: a fresh process
    finally:
        measure.close()
    trials = tmp_store.trials(experiment="warm", run_id=run_id)
    assert len(trials) == 5 and (trials["status"] == "ok").all()
    processes = [json.loads(m)["process"] for m in trials["method"]]
    assert processes == ["warm (one process per round)"] * 4 + ["fresh"]
    assert all(c.rounds == 2 and len(c.samples) >= 20 for c in result.candidates)


def test_the_adaptive_kpis_name_every_trial_of_both_searches(tmp_store):
    from saraikit.core.store import Trial
    from saraikit.report import grid_records, kpi

    run_id = tmp_store.start_run(target="t")
    exhaustive_ids = [tmp_store.record(run_id, Trial("grid_exhaustive", {"i": i})) for i in range(3)]
    adaptive_ids = [tmp_store.record(run_id, Trial(f"grid_adaptive_{when}", {"i": i}))
                    for when in ("before", "after") for i in range(2)]
    grid_records.record_adaptive(tmp_store, run_id, "grid_exhaustive", ["grid_adaptive_before", "grid_adaptive_after"],
                                 0.36, 1.5, "successive_halving, warm processes", "piper", "abc", "real", 24)
    ledger = kpi.ledger(tmp_store, "t").set_index("kpi")
    assert ledger.loc["adaptive_time_ratio", "value"] == 0.36 and ledger.loc["adaptive_gap_pct", "value"] == 1.5
    assert ledger.loc["adaptive_gap_pct", "provenance"] == "derived"
    assert ledger.loc["adaptive_gap_pct", "verdict"] not in ("pass", "fail")  # one search each: never judged
    assert ledger.loc["adaptive_time_ratio", "source_trials"] == exhaustive_ids + adaptive_ids
    assert ledger.loc["adaptive_time_ratio", "n"] == 2


def _spawn_orphan_trial(path):
    from saraikit.core.trials import run_isolated

    run_isolated(_write_pid_and_sleep, path, timeout_s=60)


def _write_pid_and_sleep(path):
    import time
    from pathlib import Path

    Path(path).write_text(str(os.getpid()))
    time.sleep(30)


def test_an_isolated_trial_dies_with_the_process_that_started_it(tmp_path):
    import multiprocessing as mp
    import signal
    import time

    marker = tmp_path / "pid"
    parent = mp.get_context("spawn").Process(target=_spawn_orphan_trial, args=(str(marker),))
    parent.start()
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the trial never started"
        time.sleep(0.1)
    trial_pid = int(marker.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.join(5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(trial_pid, 0)
        except ProcessLookupError:
            return  # gone with its parent
        time.sleep(0.1)
    os.kill(trial_pid, signal.SIGKILL)
    pytest.fail("the trial outlived the process that started it")
