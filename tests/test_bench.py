import json

import numpy as np
import pytest

from saraikit import cli
from saraikit.core import spread, stats
from saraikit.core.errors import ConfigError
from saraikit.experiments import bench
from saraikit.core.store import ResultsStore

from helpers import tiny_matmul_model


@pytest.fixture()
def tiny(tmp_path):
    return tiny_matmul_model(tmp_path / "tiny.onnx", size=16)


FAST = {"warmup": 1, "min_iterations": 20, "min_duration_s": 0.0}


def test_isolated_bench_stores_every_figure(tiny, tmp_store):
    spec = bench.OnnxBench(str(tiny), ort={"intra_op_num_threads": 1}, plan=FAST, dims={"batch": 4})
    run = tmp_store.start_run(target="unit")
    outcome = bench.bench_onnx(spec, store=tmp_store, run_id=run, model_name="tiny", model_sha256="s")
    assert outcome.ok and outcome.summary.n == 20  # 7 + 7 + 6 over the default 3 processes
    assert [(p.round, p.n) for p in outcome.processes] == [(1, 7), (2, 7), (3, 6)]
    assert outcome.raw["samples_ms"] == spread.flatten(outcome.processes)
    assert (outcome.summary.p50_ci_low, outcome.summary.p50_ci_high) == (outcome.spread.ci_low, outcome.spread.ci_high)
    assert outcome.spread.k == 3 and len(outcome.raw["per_process"]) == 3
    assert outcome.raw["input_shapes"] == {"x": [4, 16]}
    frame = tmp_store.results(run_id=run).set_index("metric")
    assert frame.loc["latency_p50", "value"] == pytest.approx(float(np.median(outcome.raw["samples_ms"])))
    assert frame.loc["latency_p50", "n"] == 20 and frame.loc["latency_p50", "unit"] == "ms"
    assert json.loads(frame.loc["latency_p99", "extra"]) == {"supported": False, "min_samples": 662}
    assert frame.loc["throughput", "provenance"] == "derived"
    assert frame.loc["peak_rss", "value"] > 10 * 2**20
    config = json.loads(frame.loc["latency_p50", "config"])
    assert config["inputs"] == "synthetic" and config["ort"]["intra_op_num_threads"] == 1
    method = json.loads(frame.loc["latency_p50", "method"])
    assert method["isolated"] is True and method["min_iterations"] == 20
    assert method["processes"] == 3 and method["process_sizes"] == [7, 7, 6] and method["rounds"] == [1, 2, 3]
    assert json.loads(frame.loc["latency_p50_ci_low", "extra"])["method"] == "hierarchical bootstrap over 3 processes"
    spread_extra = json.loads(frame.loc["latency_process_spread", "extra"])
    assert spread_extra["process_medians"] == pytest.approx(list(outcome.spread.process_medians))
    assert frame.loc["latency_process_spread", "value"] == pytest.approx(outcome.spread.spread_ratio)
    assert frame.loc["latency_unstable", "value"] == float(outcome.spread.unstable)
    assert frame.loc["load_time", "n"] == 3


def test_split_plan_keeps_the_totals():
    plans = bench.split_plan({"warmup": 2, "min_iterations": 20, "min_duration_s": 1.5}, 3)
    assert [p["min_iterations"] for p in plans] == [7, 7, 6]
    assert [p["min_duration_s"] for p in plans] == pytest.approx([0.5] * 3)
    assert all(p["warmup"] == 2 for p in plans)  # every process starts cold
    assert [p["min_iterations"] for p in bench.split_plan({"min_iterations": 2}, 3)] == [1, 1, 1]
    assert bench.split_plan({}, 2)[0]["min_duration_s"] == pytest.approx(0.5)  # the default 1 s is split too
    with pytest.raises(ConfigError, match="processes must be an integer >= 1, got 0"):
        bench.split_plan({}, 0)


def test_one_process_is_the_single_process_behaviour(tiny):
    spec = bench.OnnxBench(str(tiny), plan=FAST, dims={"batch": 1})
    outcome = bench.bench_onnx(spec, processes=1)
    assert outcome.ok and [(p.round, p.n) for p in outcome.processes] == [(1, 20)]
    plain = stats.summarize(outcome.raw["samples_ms"])
    assert (outcome.summary.p50_ci_low, outcome.summary.p50_ci_high) == (plain.p50_ci_low, plain.p50_ci_high)
    with pytest.raises(ConfigError, match="processes=2 needs fresh processes"):
        bench.bench_onnx(spec, processes=2, isolated=False)
    with pytest.raises(ConfigError, match="processes must be an integer >= 1"):
        bench.bench_onnx(spec, processes=0)


def fake_raw(spec, scale=1.0):
    samples = [scale * (1 + i / 100) for i in range(spec.plan["min_iterations"])]
    timing = {**spec.plan, "n": len(samples), "wall_s": 0.1, "stop_reason": "min iterations and min duration met",
              "timer": "perf_counter_ns"}
    memory = {"rss_bytes": 1, "peak_rss_bytes": 2 * 2**20, "uss_bytes": None, "pss_bytes": None}
    return {"load_s": 0.1, "first_inference_ms": 2.0, "samples_ms": samples, "warmup_ms": [3.0], "method": timing,
            "memory": {"before": memory, "loaded": memory, "after": memory}, "input_shapes": {"x": [1, 16]}}


def test_interleaved_rounds_run_every_configuration_once_per_round(tiny, tmp_store, monkeypatch):
    order = []

    def fake_run_process(spec, isolated=True, timeout_s=600.0):
        order.append((spec.ort.get("intra_op_num_threads"), spec.plan["min_iterations"]))
        if spec.ort.get("intra_op_num_threads") == 3 and len(order) > 3:
            return None, "crashed: process killed by SIGSEGV"
        return fake_raw(spec, spec.ort["intra_op_num_threads"]), None

    monkeypatch.setattr(bench, "run_process", fake_run_process)
    specs = {name: bench.OnnxBench(str(tiny), ort={"intra_op_num_threads": t}, plan={"min_iterations": 9})
             for name, t in (("a", 1), ("b", 2), ("c", 3))}
    outcomes = bench.bench_interleaved(specs, processes=3, store=tmp_store, experiment="interleaved")
    # round 1: a b c; round 2: a b c (c crashes); round 3: a b
    assert order == [(1, 3), (2, 3), (3, 3), (1, 3), (2, 3), (3, 3), (1, 3), (2, 3)]
    assert [p.round for p in outcomes["a"].processes] == [1, 2, 3] and outcomes["b"].spread.k == 3
    assert not outcomes["c"].ok and "SIGSEGV" in outcomes["c"].error and "process 2 of 3" in outcomes["c"].error
    trials = tmp_store.trials(experiment="interleaved")
    assert sorted(trials["status"]) == ["failed", "ok", "ok"]  # one trial per configuration
    row = bench.outcome_row("b", specs["b"], outcomes["b"])
    assert row["processes"] == 3 and row["n"] == 9 and row["process_medians_ms"] == [2.02] * 3


def test_real_feeds_are_labelled_real(tiny):
    feeds = {"x": np.ones((2, 16), dtype=np.float32)}
    outcome = bench.bench_onnx(bench.OnnxBench(str(tiny), plan=FAST, feeds=feeds), isolated=False)
    assert outcome.ok and outcome.raw["input_shapes"] == {"x": [2, 16]}
    assert bench.OnnxBench(str(tiny), feeds=feeds).config()["inputs"] == "real"


def test_failed_configuration_is_a_failed_trial_row(tmp_path, tmp_store):
    broken = tmp_path / "broken.onnx"
    broken.write_text("this is not an onnx model")
    run = tmp_store.start_run()
    outcome = bench.bench_onnx(bench.OnnxBench(str(broken), plan=FAST), store=tmp_store, run_id=run)
    assert not outcome.ok and "broken.onnx" in outcome.error
    trials = tmp_store.trials(run_id=run)
    assert list(trials["status"]) == ["failed"] and "broken.onnx" in trials.iloc[0]["error"]


def test_config_key_depends_on_the_config(tiny):
    a = bench.OnnxBench(str(tiny), ort={"intra_op_num_threads": 1})
    b = bench.OnnxBench(str(tiny), ort={"intra_op_num_threads": 2})
    assert a.config_key() != b.config_key()
    assert a.config_key() == bench.OnnxBench(str(tiny), ort={"intra_op_num_threads": 1}).config_key()


def test_overhead_ratio_is_close_to_one_and_well_formed(tiny):
    result = bench.harness_overhead(str(tiny), dims={"batch": 1}, rounds=6, round_s=0.05)
    # not a performance target (that is the benchmark's job): only that the numbers are coherent
    assert result.rounds == 6 and len(result.harness_ms) == 6 and len(result.bare_ms) == 6
    assert 0.2 < result.ratio < 5
    assert result.comparison.ci_low <= result.ratio <= result.comparison.ci_high


# --- command line: bad input gets a clear error --------------------------------------------------

def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_missing_model(capsys, tmp_path):
    code, _, err = run_cli(capsys, "bench", str(tmp_path / "nope.onnx"), "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "no model named" in err and "nope.onnx" in err


def test_cli_text_file_named_onnx(capsys, tmp_path):
    fake = tmp_path / "fake.onnx"
    fake.write_text("hello, I am text")
    code, _, err = run_cli(capsys, "bench", str(fake), "--inline", "--db", str(tmp_path / "r.sqlite"))
    assert code == 1 and "fake.onnx" in err and "failed" in err


def test_cli_truncated_onnx(capsys, tiny, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    code, _, err = run_cli(capsys, "bench", str(truncated), "--inline", "--db", str(tmp_path / "r.sqlite"))
    assert code == 1 and "truncated.onnx" in err


def test_cli_unknown_ort_key(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, "bench", str(tiny), "--ort", "intra_threads=2", "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "intra_threads" in err and "intra_op_num_threads" in err


def test_cli_zero_iterations(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, "bench", str(tiny), "--min-iterations", "0", "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "min_iterations must be an integer >= 1" in err


def test_cli_processes_must_be_fresh_with_inline(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, "bench", str(tiny), "--inline", "--processes", "2", "--db",
                           str(tmp_path / "r.sqlite"))
    assert code == 2 and "processes=2 needs fresh processes" in err


def test_cli_negative_iterations(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, "bench", str(tiny), "--min-iterations", "-3", "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "got -3" in err


def test_cli_bench_prints_a_readable_table(capsys, tiny, tmp_path):
    code, out, _ = run_cli(capsys, "bench", str(tiny), "--dim", "batch=2", "--min-iterations", "30",
                           "--min-duration", "0", "--db", str(tmp_path / "r.sqlite"))
    assert code == 0
    assert "inputs: synthetic {'x': [2, 16]}" in out and "unsupported: n=30 < 662" in out
    assert "processes: 3 processes, medians " in out and "max/min" in out and "stable" in out.lower()
    assert len(ResultsStore(tmp_path / "r.sqlite").results()) > 10


@pytest.mark.integration
def test_bench_real_piper_voice_with_synthetic_phonemes(model_paths, tmp_store):
    spec = bench.OnnxBench(str(model_paths["piper-en_US-joe-medium"]), plan=FAST,
                           dims={"batch_size": 1, "phonemes": 40},
                           values={"input_lengths": [40], "scales": [0.667, 1.0, 0.8]})
    outcome = bench.bench_onnx(spec, store=tmp_store, model_name="piper")
    assert outcome.ok, outcome.error
    assert outcome.raw["input_shapes"]["input"] == [1, 40]
    assert outcome.summary.p50 > 0.5  # a VITS decoder on 40 phonemes takes milliseconds, not microseconds
