"""LLM latency protocol: streamed generation, llama-bench-style pp/tg, sweeps, store rows, analysis.

The integration tests load the default GGUF once (n_ctx 512, one thread) and
use few tokens; no test asserts on speed, only on counts and relations that
hold on any machine.
"""

import dataclasses
import hashlib
import json
import math

import pandas as pd
import psutil
import pytest

from saraikit.core.errors import ConfigError, MeasurementError, ModelError
from saraikit.data import prompts
from saraikit.engines import llama
from saraikit.engines.llama import LlamaConfig
from saraikit.experiments.llm import analysis, generation, load, records, sweeps, throughput

SMALL = LlamaConfig(n_ctx=512, n_threads=1, n_threads_batch=1, seed=load.DEFAULT_SEED)


@pytest.fixture(scope="module")
def gguf(model_paths):
    return model_paths[load.DEFAULT_MODEL]


@pytest.fixture(scope="module")
def loaded(gguf):
    return load.load(gguf, SMALL)


@pytest.fixture(scope="module")
def model(loaded):
    return loaded.llm


# --- generation (unit) ------------------------------------------------------------------------


def test_cut_at_stop_keeps_text_before_the_earliest_stop():
    assert generation._cut_at_stop(" Four.\nUser: next", ("\nUser:",)) == " Four."
    assert generation._cut_at_stop("a|b#c", ("#", "|")) == "a"
    assert generation._cut_at_stop("no stop here", ("\nUser:",)) is None


# --- bad input without loading a model (unit) ------------------------------------------------


def test_missing_gguf_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found.*nowhere.gguf"):
        load.load(tmp_path / "nowhere.gguf")


def test_a_file_that_is_not_gguf_is_a_model_error(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"ONNX and then some")
    with pytest.raises(ModelError, match="not a GGUF file"):
        load.load(fake)
    with pytest.raises(ModelError, match="not a GGUF file"):
        sweeps.thread_sweep(fake, [1])


# --- arithmetic and store rows (unit) -------------------------------------------------------


def _throughput(wall_ms, llama_ms, test="tg", n_tokens=10):
    return throughput.Throughput(test, n_tokens, 0, 1, 1, list(wall_ms), list(llama_ms), warmup=1)


def test_throughput_is_tokens_over_seconds_per_repetition():
    result = _throughput([100.0, 200.0], [90.0, 180.0])
    assert result.tokens_per_s == pytest.approx([100.0, 50.0])
    assert result.mean_tokens_per_s == pytest.approx(75.0)
    assert result.std_tokens_per_s == pytest.approx(math.sqrt(2) * 25.0)
    assert result.llama_tokens_per_s == pytest.approx([10 / 0.09, 10 / 0.18])
    assert result.name == "tg10" and dataclasses.replace(result, depth=64).name == "tg10 @ d64"


def test_compare_with_llama_cpp_pools_the_repetitions():
    close = throughput.compare_with_llama_cpp(_throughput([100.0, 100.0], [98.0, 99.0]))
    assert close.ratio == pytest.approx(197 / 200) and close.within_tolerance
    assert close.per_repetition == pytest.approx([0.98, 0.99])
    assert close.binding_tokens_per_s == pytest.approx(100.0)
    far = throughput.compare_with_llama_cpp(_throughput([100.0, 100.0], [90.0, 96.0]))
    assert far.ratio == pytest.approx(0.93) and not far.within_tolerance


def test_throughput_trial_is_stored_with_units_and_provenance(tmp_store):
    run = tmp_store.start_run(target="unit")
    trial = records.throughput_trial(_throughput([100.0, 100.0], [98.0, 99.0], test="pp", n_tokens=512), SMALL,
                               model_name="gguf", model_sha256="abc")
    assert trial.experiment == "llm_pp"
    tmp_store.record(run, trial)
    frame = tmp_store.results(run_id=run).set_index("metric")
    assert frame.loc["tokens_per_s_mean", "value"] == pytest.approx(5120.0)
    assert frame.loc["tokens_per_s_mean", "provenance"] == "derived"
    assert frame.loc["wall_time_mean", "provenance"] == "measured"
    assert frame.loc["wall_time_mean", "unit"] == "ms" and frame.loc["wall_time_mean", "n"] == 2
    assert json.loads(frame.loc["binding_vs_llama_cpp_ratio", "extra"])["within_tolerance"] is True
    assert json.loads(frame.loc["tokens_per_s_mean", "config"])["test"] == "pp512"


def test_pooled_rate_weights_repetitions_by_time_unlike_the_mean_of_rates():
    row = throughput.throughput_row(_throughput([100.0, 900.0], [100.0, 900.0]))
    assert row["tokens_per_s_mean"] == pytest.approx((100 + 100 / 9) / 2)
    assert row["tokens_per_s_pooled"] == pytest.approx(20.0) == row["llama_tokens_per_s_pooled"]
    assert row["binding_ratio"] == pytest.approx(1.0)


def test_failed_sweep_rows_become_failed_trials_and_skipped_rows_none():
    frame = pd.DataFrame([
        {"n_ctx": 512, "prompt_length": 32, "status": "crashed", "test": "pp32", "error": "killed", "config": {}},
        {"n_ctx": 512, "prompt_length": 999, "status": "skipped", "error": "too long"},
    ])
    trials = records.context_trials(frame, model_name="gguf")
    assert len(trials) == 1
    assert trials[0].experiment == "llm_context" and trials[0].status == "failed"
    assert trials[0].error == "crashed: killed" and trials[0].figures == []


# --- the real model (integration) ------------------------------------------------------------


@pytest.mark.integration
def test_load_reports_the_mapped_gguf_inside_rss(loaded):
    assert loaded.load_s > 0 and loaded.llama_load_ms > 0
    assert loaded.file_bytes == loaded.mapped.file_bytes > 100 * 2**20
    # The mapping's resident pages are part of RSS and cannot exceed the file (plus one page).
    assert 0 < loaded.mapped.rss_bytes <= loaded.file_bytes + 4096
    assert loaded.memory_after.rss_bytes >= loaded.mapped.rss_bytes
    assert loaded.memory_after.uss_bytes <= loaded.memory_after.pss_bytes <= loaded.memory_after.rss_bytes
    table = loaded.memory_table().set_index("metric")
    assert table.loc["GGUF file", "after_MiB"] == pytest.approx(loaded.file_bytes / 2**20)


@pytest.mark.integration
def test_without_mmap_the_gguf_is_not_mapped_but_copied(gguf):
    # measure_load uses a fresh process: this one already maps the GGUF through the module fixture.
    unmapped = load.measure_load(gguf, dataclasses.replace(SMALL, use_mmap=False))
    assert unmapped.llm is None and unmapped.mapped is None
    anon_growth = unmapped.split_after.anon_bytes - unmapped.split_before.anon_bytes
    assert anon_growth > 0.5 * gguf.stat().st_size  # the weights now live in anonymous memory


@pytest.mark.integration
def test_the_base_model_gets_the_few_shot_prompt(model):
    assert prompts.chat_template(model) is None
    assert prompts.build_prompt(model, "What time is it in Tokyo?").kind == "few-shot"


@pytest.mark.integration
@pytest.mark.parametrize("language", ["en", "es"])
def test_greedy_generation_is_non_empty_and_repeats_after_a_reset(model, language):
    prompt = prompts.build_prompt(model, prompts.PROMPTS[language][0], language)
    first = generation.generate_once(model, prompt, max_tokens=16)
    second = generation.generate_once(model, prompt, max_tokens=16)
    assert first.text and first.text == second.text
    assert prompt.stop[0] not in first.text
    assert first.stop_reason in ("stop", "eos", "length")
    assert 0 < first.ttft_ms < first.total_ms
    assert first.n_generated == len(first.token_times_ms) <= 16
    assert first.token_times_ms[0] == first.ttft_ms and first.token_times_ms == sorted(first.token_times_ms)


@pytest.mark.integration
def test_reset_defeats_prefix_reuse(model):
    prompt = prompts.few_shot_prompt(prompts.PROMPTS["en"][1])
    first = generation.generate_once(model, prompt, max_tokens=4)
    second = generation.generate_once(model, prompt, max_tokens=4)
    # llama.cpp's own count of prompt tokens evaluated: all of them, both times.
    assert first.perf.n_p_eval == second.perf.n_p_eval == first.n_prompt_tokens > 50
    # The last sampled token is never fed back: n tokens cost n - 1 single-token decodes.
    assert second.perf.n_eval == second.n_generated - 1


@pytest.mark.integration
def test_the_bindings_own_completion_does_reuse_the_prefix(model):
    """The pitfall the protocol defeats: a second plain llm(prompt) evaluates no prompt tokens."""
    text = prompts.few_shot_prompt(prompts.PROMPTS["en"][2]).text
    llama.fresh_context(model)
    model(text, max_tokens=2, temperature=0.0)
    assert llama.read_perf(model).n_p_eval > 50
    llama.reset_perf(model)
    model(text, max_tokens=2, temperature=0.0)
    assert llama.read_perf(model).n_p_eval == 0


@pytest.mark.integration
def test_bench_pp_and_tg_count_their_tokens(model):
    pp = throughput.bench_pp(model, n_prompt=64, repetitions=2)
    assert llama.read_perf(model).n_p_eval == 64  # the counters of the last repetition
    tg = throughput.bench_tg(model, n_gen=8, repetitions=3)
    perf = llama.read_perf(model)
    assert (perf.n_eval, perf.n_p_eval) == (8, 0)
    assert (pp.name, pp.n, tg.name, tg.n) == ("pp64", 2, "tg8", 3)
    assert all(value > 0 for value in pp.tokens_per_s + tg.tokens_per_s + tg.llama_tokens_per_s)
    assert (tg.n_threads, tg.n_threads_batch) == (1, 1)
    check = throughput.compare_with_llama_cpp(tg)
    assert check.n == 3 and check.ratio > 0 and check.test == "tg8"


@pytest.mark.integration
def test_tg_at_depth_counts_only_the_timed_tokens(model):
    tg = throughput.bench_tg(model, n_gen=4, repetitions=1, warmup=0, depth=32)
    perf = llama.read_perf(model)
    assert (perf.n_eval, perf.n_p_eval) == (4, 0)
    assert tg.name == "tg4 @ d32"


@pytest.mark.integration
def test_bad_generation_and_bench_input_is_a_config_error(model):
    with pytest.raises(ConfigError, match="empty"):
        generation.generate_once(model, "   ")
    with pytest.raises(ConfigError, match="max_tokens must be an int >= 1, got 0"):
        generation.generate_once(model, "Hello", max_tokens=0)
    with pytest.raises(ConfigError, match="exceed n_ctx=512"):
        generation.generate_once(model, "Hello", max_tokens=600)
    with pytest.raises(ConfigError, match="temperature"):
        generation.generate_once(model, "Hello", temperature=-1)
    with pytest.raises(ConfigError, match="exceed n_ctx=512"):
        throughput.bench_pp(model, n_prompt=513)
    with pytest.raises(ConfigError, match="repetitions"):
        throughput.bench_tg(model, n_gen=4, repetitions=0)


@pytest.mark.integration
def test_run_prompts_tabulates_answers(model, tmp_store):
    frame = generation.run_prompts(model, prompts.PROMPTS["es"][:2], "es", max_tokens=12, warmup=0)
    assert list(frame["prompt_index"]) == [0, 1]
    assert frame["answer"].str.len().min() > 0
    assert (frame["ttft_ms"] < frame["total_ms"]).all()
    assert (frame["llama_n_p_eval"] == frame["n_prompt_tokens"]).all()
    trial = records.prompts_trial(frame, SMALL, max_tokens=12, model_name="gguf")
    run = tmp_store.start_run(target="unit")
    tmp_store.record(run, trial)
    stored = tmp_store.results(run_id=run).set_index("metric")
    assert stored.loc["ttft_p50", "n"] == 2 and stored.loc["ttft_p50", "unit"] == "ms"
    assert stored.loc["decode_tokens_per_s_mean", "provenance"] == "derived"
    config = json.loads(stored.loc["ttft_p50", "config"])
    assert (config["languages"], config["temperature"], config["n_prompts"]) == (["es"], [0.0], 2)
    with pytest.raises(ConfigError, match="non-empty list"):
        generation.run_prompts(model, "just one string")


@pytest.mark.integration
def test_load_trial_stores_memory_and_file_size(loaded, tmp_store):
    run = tmp_store.start_run(target="unit")
    tmp_store.record(run, records.load_trial(loaded, model_name=load.DEFAULT_MODEL))
    stored = tmp_store.results(run_id=run).set_index("metric")
    assert stored.loc["gguf_file_size", "value"] == loaded.file_bytes
    assert stored.loc["rss_after_load", "value"] == loaded.memory_after.rss_bytes
    assert stored.loc["load_time", "unit"] == "s" and stored.loc["load_time", "provenance"] == "measured"


@pytest.mark.integration
def test_thread_sweep_runs_each_count_in_its_own_process(gguf, tmp_store):
    frame = sweeps.thread_sweep(gguf, [1], n_prompt=16, n_gen=4, repetitions=2, config=SMALL)
    assert list(frame["status"]) == ["ok", "ok"] and list(frame["test"]) == ["pp16", "tg4"]
    assert list(frame["n_threads"]) == [1, 1] and list(frame["n"]) == [2, 2]
    assert (frame["tokens_per_s_mean"] > 0).all()
    trials = records.thread_trials(frame, model_name=load.DEFAULT_MODEL)
    assert [t.experiment for t in trials] == ["llm_threads"] * 2 and len(trials[0].samples) == 2
    run = tmp_store.start_run(target="unit")
    for trial in trials:
        tmp_store.record(run, trial)
    assert len(tmp_store.trials(run_id=run)) == 2


@pytest.mark.integration
def test_context_scaling_skips_prompts_that_do_not_fit(gguf):
    frame = sweeps.context_scaling(gguf, n_ctx=[256], prompt_lengths=[32, 300], n_gen=4, repetitions=1, config=SMALL)
    by_status = frame.groupby("status")["prompt_length"].apply(list).to_dict()
    assert by_status == {"ok": [32, 32], "skipped": [300]}
    ok = frame[frame["status"] == "ok"].set_index("test")
    assert list(ok.index) == ["pp32", "tg4 @ d32"]
    assert ok.loc["tg4 @ d32", "depth"] == 32 and (ok["n_ctx"] == 256).all()
    assert (ok["tokens_per_s_mean"] > 0).all()


def test_bench_worker_is_importable_for_spawned_trials():
    assert sweeps.bench_worker.__module__ == "saraikit.experiments.llm.sweeps" and "<locals>" not in sweeps.bench_worker.__qualname__


@pytest.mark.integration
def test_rss_split_accounts_for_the_mapping_as_file_backed(loaded):
    split = loaded.split_after
    assert split.file_bytes >= loaded.mapped.rss_bytes  # the resident GGUF pages are file-backed RSS
    # The kernel's split sums to the RSS (measured a moment apart, so allow 8 MiB of drift).
    assert split.anon_bytes + split.file_bytes + split.shmem_bytes == pytest.approx(
        loaded.memory_after.rss_bytes, abs=8 * 2**20)
    table = loaded.memory_table().set_index("metric")
    assert table.loc["RSS file-backed", "after_MiB"] == pytest.approx(split.file_bytes / 2**20)


# --- notebook helpers (unit) ------------------------------------------------------------------


def _sweep_row(kind, threads, samples_ms, n_tokens=100, status="ok"):
    tokens_per_s = [n_tokens / (ms / 1000) for ms in samples_ms]
    return {"kind": kind, "test": f"{kind}{n_tokens}", "n_threads": threads, "status": status,
            "n": len(samples_ms), "samples_ms": samples_ms, "tokens_per_s_mean": sum(tokens_per_s) / len(samples_ms),
            "tokens_per_s_std": 0.0}


def test_thread_comparison_calls_a_count_best_only_when_significantly_faster():
    frame = pd.DataFrame([
        _sweep_row("pp", 1, [200.0, 201, 202, 203, 204, 205]),
        _sweep_row("pp", 2, [100.0, 101, 102, 103, 104, 105]),
        _sweep_row("tg", 1, [100.0, 104, 101, 103, 102, 105]),
        _sweep_row("tg", 2, [100.0, 103, 99, 105, 102, 104]),
    ])
    table = analysis.thread_comparison(frame).set_index(["kind", "n_threads"])
    assert table.loc[("pp", 2), "time_ratio"] == pytest.approx(102.5 / 202.5)
    assert table.loc[("pp", 2), "verdict"] == "faster" and table.loc[("pp", 2), "best_is_significant"]
    assert table.loc[("pp", 1), "verdict"] == "baseline" and not table.loc[("pp", 1), "is_best"]
    assert table.loc[("tg", 2), "verdict"] == "no significant difference"
    assert table.loc[("tg", 2), "is_best"] and not table.loc[("tg", 2), "best_is_significant"]


def test_thread_comparison_with_too_few_repetitions_says_so_and_without_rows_raises():
    frame = pd.DataFrame([_sweep_row("tg", 1, [100.0, 101]), _sweep_row("tg", 2, [50.0, 51])])
    assert analysis.thread_comparison(frame).set_index("n_threads").loc[2, "verdict"] == "insufficient samples"
    failed = pd.DataFrame([{"kind": "tg", "n_threads": 1, "status": "crashed"}])
    with pytest.raises(MeasurementError, match="no successful rows"):
        analysis.thread_comparison(failed)


def _context_rows(n_ctx, ms_per_length):
    rows = []
    for length, samples in ms_per_length.items():
        rows.append({"n_ctx": n_ctx, "prompt_length": length, "status": "ok", "kind": "pp",
                     "samples_ms": samples, "wall_ms_mean": sum(samples) / len(samples)})
        rows.append({"n_ctx": n_ctx, "prompt_length": length, "status": "ok", "kind": "tg",
                     "samples_ms": [999.0], "wall_ms_mean": 999.0})
    return rows


def test_prompt_length_fit_finds_the_line_and_flags_a_curve():
    line = _context_rows(1024, {100: [12.0, 12.0], 200: [22.0, 22.0], 400: [42.0, 42.0]})
    curve = _context_rows(2048, {100: [1.0], 200: [4.0], 400: [16.0], 800: [64.0], 1600: [256.0]})
    short = _context_rows(512, {100: [12.0], 200: [22.0]})
    fit = analysis.prompt_length_fit(pd.DataFrame(line + curve + short)).set_index("n_ctx")
    assert fit.loc[1024, "slope_ms_per_token"] == pytest.approx(0.1)
    assert fit.loc[1024, "intercept_ms"] == pytest.approx(2.0) and fit.loc[1024, "r2"] == pytest.approx(1.0)
    assert fit.loc[1024, "linear"] and fit.loc[1024, "n_samples"] == 6
    assert fit.loc[1024, "ms_per_token_first"] == pytest.approx(0.12)
    assert fit.loc[1024, "ms_per_token_last"] == pytest.approx(0.105)
    assert not fit.loc[2048, "linear"] and fit.loc[2048, "r2"] < 0.99
    assert not fit.loc[512, "linear"]  # two lengths always fit a line: no evidence either way


def test_prompt_length_fit_rejects_bad_threshold_and_empty_input():
    with pytest.raises(ConfigError, match="min_r2"):
        analysis.prompt_length_fit(pd.DataFrame(_context_rows(512, {1: [1.0]})), min_r2=1.5)
    with pytest.raises(MeasurementError, match="no successful"):
        analysis.prompt_length_fit(pd.DataFrame([{"status": "skipped", "n_ctx": 512, "prompt_length": 9}]))


def test_throughput_table_reports_mean_std_ci_and_binding_ratio():
    table = analysis.throughput_table([_throughput([100.0, 200.0], [98.0, 196.0], test="pp", n_tokens=10)])
    row = table.iloc[0]
    assert row["test"] == "pp10" and row["threads"] == "1/1" and row["n"] == 2
    assert row["tokens_per_s_mean"] == pytest.approx(75.0)
    assert row["ci_low"] < 75.0 < row["ci_high"]
    assert row["binding_ratio"] == pytest.approx(0.98) and row["within_tolerance"]


def test_thread_counts_default_to_every_logical_core_and_reject_bad_values(monkeypatch):
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 4 if logical else 2)
    assert sweeps.thread_counts(None) == [1, 2, 3, 4]
    assert sweeps.thread_counts([2, 1, 2]) == [1, 2]
    for bad in ([], 2, [0], ["2"]):
        with pytest.raises(ConfigError):
            sweeps.thread_counts(bad)


def test_resolve_gguf_accepts_a_path_and_rejects_missing_or_foreign_files(tmp_path):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    resolved = load.resolve_gguf(str(gguf))
    assert resolved.name == "tiny" and resolved.path == gguf.resolve()
    assert resolved.sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()
    with pytest.raises(ModelError, match="not found"):
        load.resolve_gguf(tmp_path / "missing.gguf")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(ModelError, match="not a GGUF"):
        load.resolve_gguf(onnx)


@pytest.mark.integration
def test_resolve_gguf_by_name_uses_the_manifest(gguf):
    resolved = load.resolve_gguf(load.DEFAULT_MODEL)
    assert resolved.path == gguf and resolved.name == load.DEFAULT_MODEL and len(resolved.sha256) == 64
    with pytest.raises(ModelError, match="not a GGUF"):
        load.resolve_gguf("silero-vad")
