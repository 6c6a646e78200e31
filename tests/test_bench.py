import json

import numpy as np
import pytest

from saraikit.experiments import bench
from saraikit import cli
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
    assert outcome.ok and outcome.summary.n == 20
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


def test_cli_negative_iterations(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, "bench", str(tiny), "--min-iterations", "-3", "--db", str(tmp_path / "r.sqlite"))
    assert code == 2 and "got -3" in err


def test_cli_bench_prints_a_readable_table(capsys, tiny, tmp_path):
    code, out, _ = run_cli(capsys, "bench", str(tiny), "--dim", "batch=2", "--min-iterations", "30",
                           "--min-duration", "0", "--db", str(tmp_path / "r.sqlite"))
    assert code == 0
    assert "inputs: synthetic {'x': [2, 16]}" in out and "unsupported: n=30 < 662" in out
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
