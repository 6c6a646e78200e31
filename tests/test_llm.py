"""LLM latency protocol: prompts, streamed generation, llama-bench-style pp/tg, sweeps, store rows.

The integration tests load the default GGUF once (n_ctx 512, one thread) and
use few tokens; no test asserts on speed, only on counts and relations that
hold on any machine.
"""

import dataclasses
import hashlib
import json
import math

import pytest

from saraikit.experiments import llm as L
from saraikit.core.errors import ConfigError, MeasurementError, ModelError
from saraikit.engines.sessions import LlamaConfig

SMALL = LlamaConfig(n_ctx=512, n_threads=1, n_threads_batch=1, seed=L.DEFAULT_SEED)


@pytest.fixture(scope="module")
def gguf(model_paths):
    return model_paths[L.DEFAULT_MODEL]


@pytest.fixture(scope="module")
def loaded(gguf):
    return L.load(gguf, SMALL)


@pytest.fixture(scope="module")
def model(loaded):
    return loaded.llm


# --- prompts (unit) ---------------------------------------------------------------------------


def test_few_shot_prompt_ends_with_an_open_assistant_turn_and_stops_at_the_next_user():
    prompt = L.few_shot_prompt("  What time is it in Tokyo? ", "en")
    assert prompt.text.endswith("\nUser: What time is it in Tokyo?\nAssistant:")
    assert prompt.stop == ("\nUser:",)
    assert prompt.text.count("\nUser: ") == 4 and prompt.text.count("\nAssistant: ") == 3
    assert (prompt.language, prompt.kind, prompt.add_bos, prompt.special) == ("en", "few-shot", True, False)


def test_spanish_few_shot_prompt_uses_spanish_labels_and_stop():
    prompt = L.few_shot_prompt("¿Qué tiempo hace hoy en Madrid?", "es")
    assert prompt.text.endswith("\nUsuario: ¿Qué tiempo hace hoy en Madrid?\nAsistente:")
    assert prompt.stop == ("\nUsuario:",)
    assert "User:" not in prompt.text and "Assistant" not in prompt.text


def test_prompt_sets_have_eight_questions_none_answered_by_an_example():
    for language, questions in L.PROMPTS.items():
        examples = {question for question, _ in L.FEW_SHOT[language].examples}
        assert len(questions) == 8 and len(set(questions)) == 8
        assert not examples & set(questions)


@pytest.mark.parametrize("question", ["", "   ", None])
def test_empty_question_is_a_config_error(question):
    with pytest.raises(ConfigError, match="empty"):
        L.few_shot_prompt(question)


def test_unknown_language_is_a_config_error():
    with pytest.raises(ConfigError, match="'fr'.*known: en, es"):
        L.few_shot_prompt("Bonjour ?", "fr")


def test_cut_at_stop_keeps_text_before_the_earliest_stop():
    assert L._cut_at_stop(" Four.\nUser: next", ("\nUser:",)) == " Four."
    assert L._cut_at_stop("a|b#c", ("#", "|")) == "a"
    assert L._cut_at_stop("no stop here", ("\nUser:",)) is None


class _FakeVocab:
    def token_get_text(self, token):
        return {1: "<s>", 2: "</s>"}[token]


class _FakeLlm:
    """Just what chat_template_prompt reads from a Llama."""

    model_path = "fake.gguf"
    _model = _FakeVocab()
    metadata = {"tokenizer.chat_template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                "{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"}

    def token_bos(self):
        return 1

    def token_eos(self):
        return 2


def test_a_model_with_a_chat_template_gets_its_template():
    prompt = L.build_prompt(_FakeLlm(), "¿Qué hora es?", "es")
    assert prompt.kind == "chat-template" and prompt.special and not prompt.add_bos
    assert prompt.text == f"<s><system>{L.FEW_SHOT['es'].system}</s><user>¿Qué hora es?</s><assistant>"


# --- bad input without loading a model (unit) ------------------------------------------------


def test_missing_gguf_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found.*nowhere.gguf"):
        L.load(tmp_path / "nowhere.gguf")


def test_a_file_that_is_not_gguf_is_a_model_error(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"ONNX and then some")
    with pytest.raises(ModelError, match="not a GGUF file"):
        L.load(fake)
    with pytest.raises(ModelError, match="not a GGUF file"):
        L.thread_sweep(fake, [1])


# --- arithmetic and store rows (unit) -------------------------------------------------------


def _throughput(wall_ms, llama_ms, test="tg", n_tokens=10):
    return L.Throughput(test, n_tokens, 0, 1, 1, list(wall_ms), list(llama_ms), warmup=1)


def test_throughput_is_tokens_over_seconds_per_repetition():
    result = _throughput([100.0, 200.0], [90.0, 180.0])
    assert result.tokens_per_s == pytest.approx([100.0, 50.0])
    assert result.mean_tokens_per_s == pytest.approx(75.0)
    assert result.std_tokens_per_s == pytest.approx(math.sqrt(2) * 25.0)
    assert result.llama_tokens_per_s == pytest.approx([10 / 0.09, 10 / 0.18])
    assert result.name == "tg10" and dataclasses.replace(result, depth=64).name == "tg10 @ d64"


def test_compare_with_llama_cpp_pools_the_repetitions():
    close = L.compare_with_llama_cpp(_throughput([100.0, 100.0], [98.0, 99.0]))
    assert close.ratio == pytest.approx(197 / 200) and close.within_tolerance
    assert close.per_repetition == pytest.approx([0.98, 0.99])
    assert close.binding_tokens_per_s == pytest.approx(100.0)
    far = L.compare_with_llama_cpp(_throughput([100.0, 100.0], [90.0, 96.0]))
    assert far.ratio == pytest.approx(0.93) and not far.within_tolerance


def test_throughput_trial_is_stored_with_units_and_provenance(tmp_store):
    run = tmp_store.start_run(target="unit")
    trial = L.throughput_trial(_throughput([100.0, 100.0], [98.0, 99.0], test="pp", n_tokens=512), SMALL,
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
    row = L._throughput_row(_throughput([100.0, 900.0], [100.0, 900.0]))
    assert row["tokens_per_s_mean"] == pytest.approx((100 + 100 / 9) / 2)
    assert row["tokens_per_s_pooled"] == pytest.approx(20.0) == row["llama_tokens_per_s_pooled"]
    assert row["binding_ratio"] == pytest.approx(1.0)


def test_failed_sweep_rows_become_failed_trials_and_skipped_rows_none():
    frame = L.pd.DataFrame([
        {"n_ctx": 512, "prompt_length": 32, "status": "crashed", "test": "pp32", "error": "killed", "config": {}},
        {"n_ctx": 512, "prompt_length": 999, "status": "skipped", "error": "too long"},
    ])
    trials = L.context_trials(frame, model_name="gguf")
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
    unmapped = L.measure_load(gguf, dataclasses.replace(SMALL, use_mmap=False))
    assert unmapped.llm is None and unmapped.mapped is None
    anon_growth = unmapped.split_after.anon_bytes - unmapped.split_before.anon_bytes
    assert anon_growth > 0.5 * gguf.stat().st_size  # the weights now live in anonymous memory


@pytest.mark.integration
def test_the_base_model_gets_the_few_shot_prompt(model):
    assert L.chat_template(model) is None
    assert L.build_prompt(model, "What time is it in Tokyo?").kind == "few-shot"


@pytest.mark.integration
@pytest.mark.parametrize("language", ["en", "es"])
def test_greedy_generation_is_non_empty_and_repeats_after_a_reset(model, language):
    prompt = L.build_prompt(model, L.PROMPTS[language][0], language)
    first = L.generate_once(model, prompt, max_tokens=16)
    second = L.generate_once(model, prompt, max_tokens=16)
    assert first.text and first.text == second.text
    assert prompt.stop[0] not in first.text
    assert first.stop_reason in ("stop", "eos", "length")
    assert 0 < first.ttft_ms < first.total_ms
    assert first.n_generated == len(first.token_times_ms) <= 16
    assert first.token_times_ms[0] == first.ttft_ms and first.token_times_ms == sorted(first.token_times_ms)


@pytest.mark.integration
def test_reset_defeats_prefix_reuse(model):
    prompt = L.few_shot_prompt(L.PROMPTS["en"][1])
    first = L.generate_once(model, prompt, max_tokens=4)
    second = L.generate_once(model, prompt, max_tokens=4)
    # llama.cpp's own count of prompt tokens evaluated: all of them, both times.
    assert first.perf.n_p_eval == second.perf.n_p_eval == first.n_prompt_tokens > 50
    # The last sampled token is never fed back: n tokens cost n - 1 single-token decodes.
    assert second.perf.n_eval == second.n_generated - 1


@pytest.mark.integration
def test_the_bindings_own_completion_does_reuse_the_prefix(model):
    """The pitfall the protocol defeats: a second plain llm(prompt) evaluates no prompt tokens."""
    text = L.few_shot_prompt(L.PROMPTS["en"][2]).text
    L.fresh_context(model)
    model(text, max_tokens=2, temperature=0.0)
    assert L.read_perf(model).n_p_eval > 50
    L.reset_perf(model)
    model(text, max_tokens=2, temperature=0.0)
    assert L.read_perf(model).n_p_eval == 0


@pytest.mark.integration
def test_bench_pp_and_tg_count_their_tokens(model):
    pp = L.bench_pp(model, n_prompt=64, repetitions=2)
    assert L.read_perf(model).n_p_eval == 64  # the counters of the last repetition
    tg = L.bench_tg(model, n_gen=8, repetitions=3)
    perf = L.read_perf(model)
    assert (perf.n_eval, perf.n_p_eval) == (8, 0)
    assert (pp.name, pp.n, tg.name, tg.n) == ("pp64", 2, "tg8", 3)
    assert all(value > 0 for value in pp.tokens_per_s + tg.tokens_per_s + tg.llama_tokens_per_s)
    assert (tg.n_threads, tg.n_threads_batch) == (1, 1)
    check = L.compare_with_llama_cpp(tg)
    assert check.n == 3 and check.ratio > 0 and check.test == "tg8"


@pytest.mark.integration
def test_tg_at_depth_counts_only_the_timed_tokens(model):
    tg = L.bench_tg(model, n_gen=4, repetitions=1, warmup=0, depth=32)
    perf = L.read_perf(model)
    assert (perf.n_eval, perf.n_p_eval) == (4, 0)
    assert tg.name == "tg4 @ d32"


@pytest.mark.integration
def test_bad_generation_and_bench_input_is_a_config_error(model):
    with pytest.raises(ConfigError, match="empty"):
        L.generate_once(model, "   ")
    with pytest.raises(ConfigError, match="max_tokens must be an int >= 1, got 0"):
        L.generate_once(model, "Hello", max_tokens=0)
    with pytest.raises(ConfigError, match="exceed n_ctx=512"):
        L.generate_once(model, "Hello", max_tokens=600)
    with pytest.raises(ConfigError, match="temperature"):
        L.generate_once(model, "Hello", temperature=-1)
    with pytest.raises(ConfigError, match="exceed n_ctx=512"):
        L.bench_pp(model, n_prompt=513)
    with pytest.raises(ConfigError, match="repetitions"):
        L.bench_tg(model, n_gen=4, repetitions=0)


@pytest.mark.integration
def test_run_prompts_tabulates_answers(model, tmp_store):
    frame = L.run_prompts(model, L.PROMPTS["es"][:2], "es", max_tokens=12, warmup=0)
    assert list(frame["prompt_index"]) == [0, 1]
    assert frame["answer"].str.len().min() > 0
    assert (frame["ttft_ms"] < frame["total_ms"]).all()
    assert (frame["llama_n_p_eval"] == frame["n_prompt_tokens"]).all()
    trial = L.prompts_trial(frame, SMALL, max_tokens=12, model_name="gguf")
    run = tmp_store.start_run(target="unit")
    tmp_store.record(run, trial)
    stored = tmp_store.results(run_id=run).set_index("metric")
    assert stored.loc["ttft_p50", "n"] == 2 and stored.loc["ttft_p50", "unit"] == "ms"
    assert stored.loc["decode_tokens_per_s_mean", "provenance"] == "derived"
    config = json.loads(stored.loc["ttft_p50", "config"])
    assert (config["languages"], config["temperature"], config["n_prompts"]) == (["es"], [0.0], 2)
    with pytest.raises(ConfigError, match="non-empty list"):
        L.run_prompts(model, "just one string")


@pytest.mark.integration
def test_load_trial_stores_memory_and_file_size(loaded, tmp_store):
    run = tmp_store.start_run(target="unit")
    tmp_store.record(run, L.load_trial(loaded, model_name=L.DEFAULT_MODEL))
    stored = tmp_store.results(run_id=run).set_index("metric")
    assert stored.loc["gguf_file_size", "value"] == loaded.file_bytes
    assert stored.loc["rss_after_load", "value"] == loaded.memory_after.rss_bytes
    assert stored.loc["load_time", "unit"] == "s" and stored.loc["load_time", "provenance"] == "measured"


@pytest.mark.integration
def test_thread_sweep_runs_each_count_in_its_own_process(gguf, tmp_store):
    frame = L.thread_sweep(gguf, [1], n_prompt=16, n_gen=4, repetitions=2, config=SMALL)
    assert list(frame["status"]) == ["ok", "ok"] and list(frame["test"]) == ["pp16", "tg4"]
    assert list(frame["n_threads"]) == [1, 1] and list(frame["n"]) == [2, 2]
    assert (frame["tokens_per_s_mean"] > 0).all()
    trials = L.thread_trials(frame, model_name=L.DEFAULT_MODEL)
    assert [t.experiment for t in trials] == ["llm_threads"] * 2 and len(trials[0].samples) == 2
    run = tmp_store.start_run(target="unit")
    for trial in trials:
        tmp_store.record(run, trial)
    assert len(tmp_store.trials(run_id=run)) == 2


@pytest.mark.integration
def test_context_scaling_skips_prompts_that_do_not_fit(gguf):
    frame = L.context_scaling(gguf, n_ctx=[256], prompt_lengths=[32, 300], n_gen=4, repetitions=1, config=SMALL)
    by_status = frame.groupby("status")["prompt_length"].apply(list).to_dict()
    assert by_status == {"ok": [32, 32], "skipped": [300]}
    ok = frame[frame["status"] == "ok"].set_index("test")
    assert list(ok.index) == ["pp32", "tg4 @ d32"]
    assert ok.loc["tg4 @ d32", "depth"] == 32 and (ok["n_ctx"] == 256).all()
    assert (ok["tokens_per_s_mean"] > 0).all()


def test_bench_worker_is_importable_for_spawned_trials():
    assert L.bench_worker.__module__ == "saraikit.llm" and "<locals>" not in L.bench_worker.__qualname__


def test_no_perf_context_is_refused():
    class NoPerf:
        class context_params:
            no_perf = True

    with pytest.raises(MeasurementError, match="no_perf"):
        L.read_perf(NoPerf())


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
    frame = L.pd.DataFrame([
        _sweep_row("pp", 1, [200.0, 201, 202, 203, 204, 205]),
        _sweep_row("pp", 2, [100.0, 101, 102, 103, 104, 105]),
        _sweep_row("tg", 1, [100.0, 104, 101, 103, 102, 105]),
        _sweep_row("tg", 2, [100.0, 103, 99, 105, 102, 104]),
    ])
    table = L.thread_comparison(frame).set_index(["kind", "n_threads"])
    assert table.loc[("pp", 2), "time_ratio"] == pytest.approx(102.5 / 202.5)
    assert table.loc[("pp", 2), "verdict"] == "faster" and table.loc[("pp", 2), "best_is_significant"]
    assert table.loc[("pp", 1), "verdict"] == "baseline" and not table.loc[("pp", 1), "is_best"]
    assert table.loc[("tg", 2), "verdict"] == "no significant difference"
    assert table.loc[("tg", 2), "is_best"] and not table.loc[("tg", 2), "best_is_significant"]


def test_thread_comparison_with_too_few_repetitions_says_so_and_without_rows_raises():
    frame = L.pd.DataFrame([_sweep_row("tg", 1, [100.0, 101]), _sweep_row("tg", 2, [50.0, 51])])
    assert L.thread_comparison(frame).set_index("n_threads").loc[2, "verdict"] == "insufficient samples"
    failed = L.pd.DataFrame([{"kind": "tg", "n_threads": 1, "status": "crashed"}])
    with pytest.raises(MeasurementError, match="no successful rows"):
        L.thread_comparison(failed)


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
    fit = L.prompt_length_fit(L.pd.DataFrame(line + curve + short)).set_index("n_ctx")
    assert fit.loc[1024, "slope_ms_per_token"] == pytest.approx(0.1)
    assert fit.loc[1024, "intercept_ms"] == pytest.approx(2.0) and fit.loc[1024, "r2"] == pytest.approx(1.0)
    assert fit.loc[1024, "linear"] and fit.loc[1024, "n_samples"] == 6
    assert fit.loc[1024, "ms_per_token_first"] == pytest.approx(0.12)
    assert fit.loc[1024, "ms_per_token_last"] == pytest.approx(0.105)
    assert not fit.loc[2048, "linear"] and fit.loc[2048, "r2"] < 0.99
    assert not fit.loc[512, "linear"]  # two lengths always fit a line: no evidence either way


def test_prompt_length_fit_rejects_bad_threshold_and_empty_input():
    with pytest.raises(ConfigError, match="min_r2"):
        L.prompt_length_fit(L.pd.DataFrame(_context_rows(512, {1: [1.0]})), min_r2=1.5)
    with pytest.raises(MeasurementError, match="no successful"):
        L.prompt_length_fit(L.pd.DataFrame([{"status": "skipped", "n_ctx": 512, "prompt_length": 9}]))


def test_mean_ci_is_a_student_t_interval():
    low, high = L.mean_ci([1.0, 2.0, 3.0])  # mean 2, sem 1/sqrt(3), t(0.975, 2) = 4.303
    assert low == pytest.approx(2 - 4.3027 / math.sqrt(3), abs=1e-3)
    assert high == pytest.approx(2 + 4.3027 / math.sqrt(3), abs=1e-3)
    assert all(math.isnan(v) for v in L.mean_ci([5.0]))


def test_throughput_table_reports_mean_std_ci_and_binding_ratio():
    table = L.throughput_table([_throughput([100.0, 200.0], [98.0, 196.0], test="pp", n_tokens=10)])
    row = table.iloc[0]
    assert row["test"] == "pp10" and row["threads"] == "1/1" and row["n"] == 2
    assert row["tokens_per_s_mean"] == pytest.approx(75.0)
    assert row["ci_low"] < 75.0 < row["ci_high"]
    assert row["binding_ratio"] == pytest.approx(0.98) and row["within_tolerance"]


def test_thread_counts_default_to_every_logical_core_and_reject_bad_values(monkeypatch):
    monkeypatch.setattr(L.psutil, "cpu_count", lambda logical=True: 4 if logical else 2)
    assert L.thread_counts(None) == [1, 2, 3, 4]
    assert L.thread_counts([2, 1, 2]) == [1, 2]
    assert L.physical_cores() == 2
    for bad in ([], 2, [0], ["2"]):
        with pytest.raises(ConfigError):
            L.thread_counts(bad)


def test_resolve_gguf_accepts_a_path_and_rejects_missing_or_foreign_files(tmp_path):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    resolved = L.resolve_gguf(str(gguf))
    assert resolved.name == "tiny" and resolved.path == gguf.resolve()
    assert resolved.sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()
    with pytest.raises(ModelError, match="not found"):
        L.resolve_gguf(tmp_path / "missing.gguf")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(ModelError, match="not a GGUF"):
        L.resolve_gguf(onnx)


@pytest.mark.integration
def test_resolve_gguf_by_name_uses_the_manifest(gguf):
    resolved = L.resolve_gguf(L.DEFAULT_MODEL)
    assert resolved.path == gguf and resolved.name == L.DEFAULT_MODEL and len(resolved.sha256) == 64
    with pytest.raises(ModelError, match="not a GGUF"):
        L.resolve_gguf("silero-vad")


def test_watch_contention_counts_only_cpu_time_that_is_not_ours(monkeypatch):
    busy = iter([100.0, 130.0])  # machine-wide busy CPU seconds at start and end
    own = iter([10.0, 22.0])  # this process and its joined children
    clock = iter([0.0, 10.0])
    monkeypatch.setattr(L, "_busy_cpu_s", lambda: next(busy))
    monkeypatch.setattr(L, "_own_cpu_s", lambda: next(own))
    monkeypatch.setattr(L.time, "perf_counter", lambda: next(clock))
    with L.watch_contention() as contention:
        assert math.isnan(contention.other_cores)  # not known until the block ends
    assert contention.wall_s == 10.0 and contention.other_cpu_s == pytest.approx(18.0)
    assert contention.other_cores == pytest.approx(1.8)
    assert "1.80 of" in contention.format()
