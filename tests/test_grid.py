import json

import numpy as np
import pandas as pd
import pytest
import yaml

from saraikit.core import spread
from saraikit.experiments import coldstart, grid
from saraikit.core.errors import ConfigError
from saraikit.core.hardware import target_slug

from helpers import tiny_matmul_model


def synthetic_measure(medians: dict[int, float], calls: list, seed=0, round_drift: float = 0.0):
    """One process per call: latencies ~ lognormal around a per-config median (keyed by intra threads).

    ``round_drift`` scales every process of a round by the same lognormal factor, as a machine whose
    speed wanders between rounds would.
    """
    rng = np.random.default_rng(seed)
    factors = {}

    def measure(config, plan):
        calls.append((dict(config), dict(plan)))
        factor = factors.setdefault(plan["round"], float(rng.lognormal(0, round_drift)))
        n = plan.get("min_iterations", 10)
        return list(factor * medians[config["intra_op_num_threads"]] * rng.lognormal(0, 0.05, n))

    return measure


def test_expand_is_the_cartesian_product_and_validates():
    configs = grid.expand({"graph_optimization_level": ["BASIC", "ALL"], "intra_op_num_threads": [1, 2, 3]})
    assert len(configs) == 6
    assert {"graph_optimization_level": "ALL", "intra_op_num_threads": 3} in configs
    with pytest.raises(ConfigError, match="intra_threads"):
        grid.expand({"intra_threads": [1]})
    with pytest.raises(ConfigError, match="non-empty lists"):
        grid.expand({"intra_op_num_threads": []})
    with pytest.raises(ConfigError):
        grid.expand({"graph_optimization_level": ["FASTEST"]})


def test_exhaustive_finds_the_fastest_and_its_equivalents():
    medians = {1: 10.0, 2: 5.0, 3: 5.02, 4: 20.0}
    calls = []
    configs = [{"intra_op_num_threads": t} for t in medians]
    # A calibrated 5% test calls 2 and 3 different in about 6% of seeds (seed 0 is one); seed 1 is typical.
    result = grid.exhaustive(configs, synthetic_measure(medians, calls, seed=1), {"min_iterations": 60})
    assert len(calls) == 4 * 3 and result.trials_run == 12  # 3 processes per configuration
    # interleaved by rounds: 1 2 3 4, 1 2 3 4, 1 2 3 4; the plan is split over the processes
    assert [(c["intra_op_num_threads"], p["round"]) for c, p in calls] == [(t, r) for r in (1, 2, 3) for t in medians]
    assert all(p["min_iterations"] == 20 for _, p in calls)
    assert all(c.rounds == 3 and len(c.samples) == 60 for c in result.candidates)
    assert result.best().config["intra_op_num_threads"] in (2, 3)
    equivalent = {c.config["intra_op_num_threads"] for c in result.equivalent_to_best()}
    assert equivalent == {2, 3}  # 0.4% apart with 5% noise: not distinguishable; 10 and 20 ms are
    table = result.table()
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table.iloc[-1]["intra_op_num_threads"] == 4 and table.iloc[-1]["vs_best"] == "slower"
    assert table.iloc[-1]["ratio_to_best"] == pytest.approx(4.0, rel=0.05)
    assert (table["processes"] == 3).all() and not table["unstable"].any()


def test_drift_shared_by_a_round_does_not_make_identical_configs_differ():
    medians = {1: 5.0, 2: 5.0, 3: 6.0}
    calls = []
    configs = [{"intra_op_num_threads": t} for t in medians]
    result = grid.exhaustive(configs, synthetic_measure(medians, calls, seed=3, round_drift=0.15),
                             {"min_iterations": 300, "min_duration_s": 0.0}, processes=4)
    table = result.table().set_index("intra_op_num_threads")
    assert table["unstable"].all()  # every configuration's processes disagree by more than 10%...
    equivalent = {c.config["intra_op_num_threads"] for c in result.equivalent_to_best()}
    assert equivalent == {1, 2}  # ...yet pairing by round tells the identical two apart from the 20% slower one
    assert table.loc[3, "vs_best"] == "slower" and table.loc[3, "ratio_to_best"] == pytest.approx(1.2, rel=0.02)
    low, high = table.loc[1, "p50_ci_low"], table.loc[1, "p50_ci_high"]
    assert high - low > 0.1 * 5.0  # the hierarchical CI carries the drift between processes


def test_successive_halving_drops_slow_configs_early_and_keeps_the_best():
    medians = {1: 10.0, 2: 5.0, 3: 5.05, 4: 20.0, 5: 30.0, 6: 7.0, 7: 12.0, 8: 40.0}
    calls = []
    configs = [{"intra_op_num_threads": t} for t in medians]
    result = grid.successive_halving(configs, synthetic_measure(medians, calls),
                                     {"min_iterations": 10, "min_duration_s": 0.0}, growth=2, max_rounds=4)
    assert result.best().config["intra_op_num_threads"] == 2
    first_round = [c for c in calls if c[1]["round"] == 1]
    later = [c for c in calls if c[1]["round"] > 1]
    assert len(first_round) == 8
    assert len(later) < 8 * 3  # far fewer measurements than racing everything to the end
    assert all(c[0]["intra_op_num_threads"] not in (5, 8) for c in later)  # the slowest never come back
    assert max(c[1]["min_iterations"] for c in calls) >= 20  # plans grow for survivors
    dropped = {c.config["intra_op_num_threads"]: c for c in result.candidates if c.dropped_in_round}
    # round 1 keeps the faster half by median and claims no significance from one process each
    assert dropped[8].dropped_in_round == 1 and "best 50% by median" in dropped[8].drop_reason
    assert "no significance claim" in dropped[8].drop_reason
    # from round 2 the paired comparison with the leader drops what is clearly slower (10 ms vs 5 ms)
    assert dropped[1].dropped_in_round == 2 and "significantly slower than the leader" in dropped[1].drop_reason
    assert dropped[6].dropped_in_round == 2  # 7 ms: significantly slower, or outside the best half
    by_round = {}
    for config, plan in calls:
        by_round.setdefault(plan["round"], []).append(config["intra_op_num_threads"])
    assert all(len(threads) == len(set(threads)) for threads in by_round.values())  # one process each per round
    assert sorted(by_round[2]) == [1, 2, 3, 6]  # the faster half of round 1, one more process each


def test_keep_fraction_is_validated():
    with pytest.raises(ConfigError, match="keep_fraction"):
        grid.successive_halving([{}], lambda c, p: [1.0], {}, keep_fraction=1.5)


def test_failed_configuration_is_kept_with_its_reason():
    def measure(config, plan):
        if config["intra_op_num_threads"] == 2:
            raise grid.MeasurementFailed("crashed: process killed by SIGSEGV")
        return [1.0] * 10

    result = grid.exhaustive([{"intra_op_num_threads": 1}, {"intra_op_num_threads": 2}], measure, {})
    table = result.table().set_index("intra_op_num_threads")
    assert table.loc[2, "status"] == "failed" and "SIGSEGV" in table.loc[2, "reason"]
    assert result.best().config == {"intra_op_num_threads": 1}


def test_heatmap_takes_the_best_cell():
    table = pd.DataFrame({"intra_op_num_threads": [1, 1, 2], "graph_optimization_level": ["ALL", "ALL", "BASIC"],
                          "p50_ms": [3.0, 2.0, 5.0]})
    heat = grid.heatmap_frame(table)
    assert heat.loc[1, "ALL"] == 2.0 and heat.loc[2, "BASIC"] == 5.0


def test_best_config_file_is_merged(tmp_path):
    path = tmp_path / "best_configs.yaml"
    grid.write_best_config(path, "a", {"intra_op_num_threads": 2}, [1.0, 1.1, 1.2, 1.0, 1.1, 1.0], "run1")
    grid.write_best_config(path, "b", {"graph_optimization_level": "BASIC"}, [2.0] * 6, "run2")
    data = yaml.safe_load(path.read_text())
    assert set(data) == {"a", "b"}
    assert data["a"]["ort"]["intra_op_num_threads"] == 2 and data["a"]["n"] == 6
    assert grid.read_best_config(path, "b")["graph_optimization_level"] == "BASIC"
    assert grid.read_best_config(path, "missing") is None
    grid.write_best_config(path, "thread_budget", {"ort_threads": 1, "llama_threads": 2}, [5.0] * 6, "run3",
                           kind="threads")
    assert grid.read_best_config(path, "thread_budget", kind="threads") == {"ort_threads": 1, "llama_threads": 2}
    assert grid.read_best_config(path, "a")["intra_op_num_threads"] == 2  # other entries survive
    processes = [spread.ProcessSamples([5.0, 5.1, 5.2], 1), spread.ProcessSamples([6.0, 6.1, 6.2], 2)]
    entry = grid.write_best_config(path, "c", {}, [], "run4", processes=processes)
    assert entry["processes"] == 2 and entry["n"] == 6 and entry["unstable"] is True
    assert entry["process_spread"] == pytest.approx(6.1 / 5.1, abs=1e-4)
    assert entry["p50_ci_ms"][0] <= 5.2 and entry["p50_ci_ms"][1] >= 6.0  # hierarchical: spans both processes


def test_a_killed_search_resumes_with_its_finished_trials_only_when_asked(tmp_path, tmp_store, monkeypatch):
    model = tiny_matmul_model(tmp_path / "tiny.onnx")
    target = target_slug("unit")
    configs = grid.expand({"intra_op_num_threads": [1, 2], "graph_optimization_level": ["BASIC", "ALL"]})
    plan = {"warmup": 1, "min_iterations": 10, "min_duration_s": 0.0}  # 5 + 5 over two processes
    run = tmp_store.start_run(target="unit")
    measure = grid.isolated_measure(str(model), tmp_store, run, "tiny", "sha", target, dims={"batch": 1})
    done = []

    def dies_after_two(config, plan_):
        if len(done) == 2:
            raise KeyboardInterrupt  # the process is killed mid-search
        done.append(config)
        return measure(config, plan_)

    with pytest.raises(KeyboardInterrupt):
        grid.exhaustive(configs, dies_after_two, plan, processes=2)
    assert len(tmp_store.trials(experiment="grid_search")) == 2  # round 1 of the first two configurations
    run2 = tmp_store.start_run(target="unit")
    resumed = grid.exhaustive(configs, grid.isolated_measure(str(model), tmp_store, run2, "tiny", "sha", target,
                                                             dims={"batch": 1}, reuse="matching"), plan, processes=2)
    assert resumed.trials_reused == 2 and resumed.trials_run == 6  # 4 configurations x 2 rounds
    trials = tmp_store.trials(experiment="grid_search")
    in_run2 = trials[trials["run_id"] == run2]
    assert len(in_run2) == 8 and in_run2["config_key"].str.endswith((":round1", ":round2")).all()
    reused = in_run2[in_run2["reused_from"].notna()]
    assert len(reused) == 2 and set(reused["reused_from"]) == set(trials[trials["run_id"] == run]["trial_id"])
    assert all(json.loads(m)["reused_from_run"] == run for m in reused["method"])
    assert all(len(c.samples) == 10 and [p.round for p in c.processes] == [1, 2] for c in resumed.candidates)


def test_a_second_search_measures_again_by_default(tmp_path, tmp_store):
    model = tiny_matmul_model(tmp_path / "tiny.onnx")
    configs = grid.expand({"intra_op_num_threads": [1, 2]})
    plan = {"warmup": 1, "min_iterations": 4, "min_duration_s": 0.0}
    for _ in range(2):
        run = tmp_store.start_run(target="unit")
        result = grid.exhaustive(configs, grid.isolated_measure(str(model), tmp_store, run, "tiny", "sha", "unit",
                                                                dims={"batch": 1}), plan, processes=2)
        assert result.trials_reused == 0 and result.trials_run == 4
    trials = tmp_store.trials(experiment="grid_search")
    assert len(trials) == 8 and trials["reused_from"].isna().all()
    with pytest.raises(ConfigError, match="reuse must be one of"):
        grid.isolated_measure(str(model), tmp_store, run, "tiny", "sha", "unit", reuse="always")


def test_break_even_arithmetic():
    cold = pd.Series([50.0, 20.0, 12.0, 10.0, 10.0])
    warm = pd.Series([11.0, 10.0, 10.0, 10.0, 10.0])
    assert coldstart.break_even(cold, warm, cost_ms=45.0) == 2  # saves 39, then 49
    assert coldstart.break_even(cold, warm, cost_ms=500.0) is None


def test_cold_start_on_a_small_model(tmp_path):
    model = tiny_matmul_model(tmp_path / "tiny.onnx")
    tidy = coldstart.cold_start(str(model), warmups=(0, 2), requests=5, repeats=2, dims={"batch": 1})
    assert len(tidy) == 2 * 2 * 5 and (tidy["error"] == "").all()
    summary = coldstart.summarize_cold_start(tidy, steady_from=3).set_index("warmups")
    assert summary.loc[0, "warmup_cost_ms"] == 0 and summary.loc[2, "warmup_cost_ms"] > 0
    assert summary.loc[2, "steady_n"] == 2 * 3 and summary.loc[0, "repeats"] == 2
