"""Notebook 04's sentences and KPI rows, from small synthetic results shaped like the real ones."""

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

from saraikit.core.contention import Contention
from saraikit.core.errors import ConfigError
from saraikit.core.memory import MappedFile, MemorySnapshot, RssSplit
from saraikit.core.store import Figure, Trial
from saraikit.core.verdict import NOT_JUDGED
from saraikit.engines.llama import LlamaConfig
from saraikit.experiments.llm import summary
from saraikit.experiments.llm.analysis import prompt_length_fit, thread_comparison
from saraikit.experiments.llm.load import LoadedLlama, ResolvedGguf
from saraikit.experiments.llm.throughput import Throughput, compare_with_llama_cpp, throughput_row
from saraikit.report import kpi
from saraikit.report.llm_records import LlmTrialIds, record_llm

MIB = 2**20
DETAILS = {"architecture": "gemma3", "name": "Gemma 3", "size_label": "270M", "parameters": 268_000_000,
           "quant_type": "Q4_K_M", "dominant_tensor_type": "Q8_0", "context_length": 32768,
           "has_chat_template": True, "tensor_types": {"Q8_0": 100, "F32": 20}}


def loaded(mapped: bool = True, split: bool = True) -> LoadedLlama:
    return LoadedLlama(
        llm=None, config=LlamaConfig(n_ctx=512, n_threads=2, n_threads_batch=2), model_path="/m.gguf",
        file_bytes=200 * MIB, load_s=0.5, llama_load_ms=450.0,
        memory_before=MemorySnapshot(rss_bytes=100 * MIB, peak_rss_bytes=100 * MIB, uss_bytes=90 * MIB,
                                     pss_bytes=95 * MIB),
        memory_after=MemorySnapshot(rss_bytes=300 * MIB, peak_rss_bytes=300 * MIB, uss_bytes=250 * MIB,
                                    pss_bytes=280 * MIB),
        mapped=MappedFile("/m.gguf", 200 * MIB, 150 * MIB, 140 * MIB, 150 * MIB) if mapped else None,
        split_before=RssSplit(60 * MIB, 40 * MIB, 0) if split else None,
        split_after=RssSplit(100 * MIB, 200 * MIB, 0) if split else None)


def answers(full_prompt: bool = True) -> pd.DataFrame:
    rows = []
    for language in ("en", "es"):
        for q in range(4):
            for repetition in range(2):
                rows.append({"language": language, "question": f"{language}{q}", "repetition": repetition,
                             "ttft_ms": 100.0 + q + 10 * repetition, "total_ms": 900.0 + q,
                             "decode_tokens_per_s": 40.0 + q, "n_prompt_tokens": 30,
                             "llama_n_p_eval": 30 if full_prompt or q else 29, "n_generated": 48 if q else 12,
                             "stop_reason": "length" if q else "stop", "prompt_kind": "chat"})
    return pd.DataFrame(rows)


def throughput(test: str = "pp", n_tokens: int = 512, wall_ms=(1000.0, 1010.0, 990.0), ratios=None,
               depth: int = 0, threads: int = 2) -> Throughput:
    ratios = ratios or [1.0 + 0.001 * (i % 3 - 1) for i in range(len(wall_ms))]
    return Throughput(test, n_tokens, depth, threads, threads, list(wall_ms),
                      [w * r for w, r in zip(wall_ms, ratios)], warmup=1)


def contention(other_cores: float) -> Contention:
    return Contention(wall_s=10.0, other_cpu_s=10.0 * other_cores, logical_cores=2)


CAVEAT = summary.ContentionCaveat(threshold=0.25, threads=2, logical_cores=2)


def sweep(faster: bool) -> pd.DataFrame:
    rows = []
    for count in (1, 2):
        scale = 0.5 if faster and count == 2 else 1.0
        for test, n_tokens, base_ms in (("pp", 512, 1000.0), ("tg", 128, 2000.0)):
            wall = [base_ms * scale + i for i in range(6)]
            rows.append({"n_threads": count, "status": "ok", **throughput_row(throughput(test, n_tokens, wall,
                                                                                          threads=count))})
    return pd.DataFrame(rows)


def context(lengths=(64, 256, 448)) -> pd.DataFrame:
    rows = []
    for size in (512, 1024):
        for length in lengths:
            pp = throughput("pp", length, [2.0 * length + size / 512 + i for i in range(2)])
            tg = throughput("tg", 32, [400.0 + length / 10 + i for i in range(2)], depth=length)
            for result, prompt_length in ((pp, length), (tg, length)):
                rows.append({"n_ctx": size, "prompt_length": prompt_length, "status": "ok", "error": "",
                             **throughput_row(result)})
    rows.append({"n_ctx": 512, "prompt_length": 960, "status": "skipped", "error": "too long"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# sentences


def test_gguf_facts_and_prompt_style():
    facts = summary.gguf_facts(DETAILS, 200 * MIB)
    assert facts.loc["file size (MiB)", "value"] == 200.0
    assert facts.loc["tensor types", "value"] == "Q8_0 x100, F32 x20"
    line = summary.gguf_lines(DETAILS, 512)[0]
    assert "model's own chat template" in line and "`Q4_K_M`" in line and "`Q8_0`" in line and "n_ctx = 512" in line
    assert "few-shot" in summary.prompt_style({**DETAILS, "has_chat_template": False})


def test_load_lines_split_the_mapped_gguf_from_private_memory():
    text = "\n".join(summary.load_lines(loaded()))
    assert "**0.50 s**" in text and "450 ms" in text
    assert "RSS 300 MiB, PSS 280 MiB, USS 250 MiB" in text
    assert "150 MiB are resident pages of the mapped GGUF (200 MiB file, 75% of it" in text
    assert "grew by 40 MiB" in text and "n_ctx=512" in text
    unmapped = summary.load_lines(loaded(mapped=False, split=False))
    assert len(unmapped) == 3 and "not mapped" in unmapped[-1]


def test_thread_defaults_table_and_line():
    defaults = {"n_threads": 1, "n_threads_batch": 2}
    table = summary.thread_options(defaults, 2)
    assert table.loc["n_threads", "llama-cpp-python default"] == 1 and table.loc["n_threads", "this notebook"] == 2
    line = summary.thread_default_lines(defaults, 2, 2)[0]
    assert "**1** thread(s)" in line and "this 2-core machine" in line and "explicitly to 2" in line


def test_answer_summaries_and_lines():
    frame = answers()
    assert set(summary.answer_summaries(frame)) == {"TTFT en+es", "total en+es", "TTFT en", "total en",
                                                     "TTFT es", "total es"}
    lines = summary.answer_lines(frame, 48, 2, "box: cpu", contention(0.1))
    assert lines[0].startswith("- TTFT over 8 questions x 2 repetition(s): n=16")
    assert "75% cut at max_tokens=48" in lines[1] and "39.0 tokens on average" in lines[1]
    assert "41.5 ± " in lines[2] and "(n=16)" in lines[2]
    assert "whole prompt in every run" in lines[3]
    assert "box: cpu; 2 threads" in lines[4] and "0.10 of 2 logical cores" in lines[4]
    assert "NOT every" in summary.answer_lines(answers(full_prompt=False), 48, 2, "box", contention(0.1))[3]


@pytest.mark.parametrize("ratios, expected", [
    ([1.0, 1.001, 0.999, 1.0], "pass"),
    ([0.90, 0.901, 0.899, 0.90], "fail"),
    ([0.95, 1.03, 0.97, 1.01], "inconclusive"),
    ([1.0], NOT_JUDGED),
])
def test_binding_verdict_judges_the_ratio_interval_against_both_bounds(ratios, expected):
    result = throughput("tg", 128, [1000.0] * len(ratios), ratios)
    assert summary.binding_verdict(compare_with_llama_cpp(result)) == expected


def test_bench_lines_show_ci_and_binding_verdict():
    bench = [throughput("pp", 512), throughput("tg", 128, [2000.0, 2010.0, 1990.0], [0.9, 0.901, 0.899])]
    table = pd.DataFrame({"ci_low": [500.0, 60.0], "ci_high": [520.0, 66.0]})
    lines = summary.bench_lines(bench, table, "box", contention(0.0))
    assert lines[0].startswith("- pp512: 512.0") and lines[0].endswith("95% CI 500.0 to 520.0 t/s.")
    assert "pp512: ratio 1.0000" in lines[2] and "**pass**" in lines[2]
    assert "tg128: ratio 0.9000" in lines[3] and "within ±3%: **fail**" in lines[3]
    assert lines[-1].startswith("- box; during these runs")


def test_contention_caveat_from_its_threshold():
    assert CAVEAT.text(contention(0.1)) == ""
    text = CAVEAT.text(contention(0.5))
    assert text.startswith(" **Contaminated**") and "0.50 of 2" in text and "2 threads on 2 cores" in text
    assert summary.ContentionCaveat(0.6, 2, 2).text(contention(0.5)) == ""


def test_thread_line_names_a_best_count_only_when_significant():
    table = thread_comparison(sweep(faster=True))
    pp = summary.thread_line(table[table["kind"] == "pp"])
    assert "best at **2 threads**" in pp and "with 1 (time ratio 0.50" in pp and "n=6 each" in pp
    flat = thread_comparison(sweep(faster=False))
    line = summary.thread_line(flat[flat["kind"] == "tg"])
    assert line.startswith("- tg128:") and ("fewest threads (1)" in line or "highest mean at 2" in line)


def test_context_parts_and_lines():
    frame = context()
    pp, tg = summary.context_parts(frame)
    assert len(pp) == 6 and len(tg) == 6 and pp["wall_ms_std"].notna().all()
    fit = prompt_length_fit(frame, 0.99)
    lines = summary.context_lines(fit, pp, tg, contended=False, linear_r2=0.99)
    assert "n_ctx 512: prompt time grows linearly" in lines[0] and "64-448 tokens, threshold 0.99" in lines[0]
    assert "the slowest n_ctx takes" in lines[2] and "(n=2 per cell)" in lines[2]
    assert lines[3].startswith("- Generation speed as the context fills (n_ctx 1024, tg32, t/s by depth): d64 ")
    contended = summary.context_lines(fit, pp, tg, contended=True, linear_r2=0.99)
    assert "linearity in prompt length not judged" in contended[0]
    short = prompt_length_fit(context(lengths=(64, 256)), 0.99)
    assert "only 2 prompt length(s) fit" in summary.fit_line(next(short.itertuples()), False, 0.99)


def test_plot_threads_one_panel_per_test():
    fig = summary.plot_threads(thread_comparison(sweep(faster=True)), "title")
    assert [ax.get_title() for ax in fig.axes] == ["pp512, n=6 per count", "tg128, n=6 per count"]
    assert len(summary.plot_threads(None, "no thread count finished").axes) == 2


def test_plot_context_draws_both_panels():
    frame = context()
    pp, tg = summary.context_parts(frame)
    fig = summary.plot_context(pp, tg, prompt_length_fit(frame), "title")
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "tg32 after the prompt, n=2 each"
    empty = summary.plot_context(pp.iloc[0:0], tg.iloc[0:0], pd.DataFrame(), "nothing finished")
    assert len(empty.axes) == 2


def llm_run(thread_table, watched) -> summary.LlmRun:
    frame = context()
    pp, tg = summary.context_parts(frame)
    return summary.LlmRun("run-1", "gemma", DETAILS, loaded(), answers(),
                          [throughput("pp", 512), throughput("tg", 128, [2000.0, 2010.0, 1990.0])], thread_table, 1,
                          prompt_length_fit(frame), pp, tg, "box: cpu", watched)


def test_conclusion_lines_with_caveats_where_contended():
    watched = {"prompts": contention(0.0), "bench": contention(0.5), "sweep": contention(0.0),
               "context": contention(0.5)}
    lines = summary.conclusion_lines(llm_run(thread_comparison(sweep(faster=True)), watched), CAVEAT, 0.99)
    text = "\n".join(lines)
    assert lines[0] == ("- **gemma**: gemma3, Q4_K_M, 268 M parameters, 200 MiB; prompted with the model's own "
                        "chat template.")
    assert lines[1].endswith("of which 150 MiB is the mapped, shareable GGUF.")
    assert lines[2].startswith("- TTFT P50 **") and "n=16, prompts en+es, 2 threads" in lines[2]
    assert "Contaminated" not in lines[2] and "Contaminated" in lines[3]
    assert "(goal: within ±3%): pp512 ratio 1.000, pass; tg128 ratio 1.000, pass." in lines[3]
    assert sum("best at **2 threads**" in line for line in lines) == 2
    assert "default would use 1 generation thread(s)" in text
    assert "- Context scaling: **Contaminated**" in text and "linearity in prompt length not judged" in text
    assert lines[-1] == "- Hardware: box: cpu. All figures are in the results DB under run run-1."


def test_conclusion_lines_without_a_finished_sweep():
    watched = {name: contention(0.0) for name in ("prompts", "bench", "sweep", "context")}
    lines = summary.conclusion_lines(llm_run(None, watched), CAVEAT, 0.99)
    assert "- Thread sweep: no thread count finished (see section 5)." in lines
    assert not any("Contaminated" in line for line in lines)
    assert any("prompt time grows linearly" in line for line in lines)


# --------------------------------------------------------------------------
# KPI rows


def source(store, run_id, name):
    return store.record(run_id, Trial("llm_" + name, {"model": "gemma"}, [Figure(name, 1.0, "s")]))


def test_record_llm_writes_four_kpis_with_their_source_trials(tmp_store):
    run_id = tmp_store.start_run(target="box", mode="quick")
    ids = LlmTrialIds(load=source(tmp_store, run_id, "load"), prompts=source(tmp_store, run_id, "prompts"),
                      bench={"pp": source(tmp_store, run_id, "pp"), "tg": source(tmp_store, run_id, "tg")})
    bench = [throughput("pp", 512), throughput("tg", 128, [2000.0, 2010.0, 1990.0])]
    written = record_llm(tmp_store, run_id, ResolvedGguf("/m.gguf", "gemma", "abc"), loaded(), answers(), bench, ids)
    rows = kpi.history(tmp_store).set_index("kpi")
    assert len(written) == 4 and set(rows["trial_id"]) == set(written)
    assert rows.loc["llm_load_s", "value"] == 0.5 and rows.loc["llm_load_s", "source_trials"] == [ids.load]
    assert "use_mmap=True, n_ctx=512" in rows.loc["llm_load_s", "method"]
    ttft = rows.loc["llm_ttft_p50_ms"]
    assert ttft["value"] == pytest.approx(106.5) and ttft["n"] == 16 and ttft["source_trials"] == [ids.prompts]
    assert ttft["ci_low"] <= ttft["value"] <= ttft["ci_high"] and ttft["dataset"] == "prompts en+es"
    assert "chat prompts" in ttft["method"] and "2 threads" in ttft["method"]
    pp = rows.loc["llm_pp_tokens_per_s"]
    assert pp["dataset"] == "llama-bench pp512" and pp["provenance"] == "derived" and pp["n"] == 3
    assert pp["ci_low"] < pp["value"] < pp["ci_high"] and pp["source_trials"] == [ids.bench["pp"]]
    assert rows.loc["llm_tg_tokens_per_s", "source_trials"] == [ids.bench["tg"]]
    assert set(rows["mode"]) == {"quick"} and set(rows["model_sha256"]) == {"abc"}
    assert not rows["dataset"].str.contains("quick").any()


def test_record_llm_refuses_a_kpi_without_a_source_trial(tmp_store):
    with pytest.raises(ConfigError, match="load trial id"):
        LlmTrialIds(load=None, prompts=1, bench={})
    run_id = tmp_store.start_run(target="box")
    ids = LlmTrialIds(load=source(tmp_store, run_id, "load"), prompts=source(tmp_store, run_id, "prompts"),
                      bench={"pp": source(tmp_store, run_id, "pp")})
    with pytest.raises(ConfigError, match="'tg' test"):
        record_llm(tmp_store, run_id, ResolvedGguf("/m.gguf", "gemma", "abc"), loaded(), answers(),
                   [throughput("pp", 512), throughput("tg", 128)], ids)
