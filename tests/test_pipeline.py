"""The end-to-end pipeline on the real default stack (integration) and its bookkeeping."""

import numpy as np
import pytest

from saraikit.engines import pipeline
from saraikit.models import stack
from saraikit.data.audio import read_audio
from saraikit.core.errors import ConfigError
from saraikit.engines.stage import Stage

CLIP = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
ES_CLIP = "/usr/share/asterisk/sounds/es_MX_f_Allison/auth-thankyou.wav"


def test_apply_threads_sets_each_engine():
    applied = pipeline.apply_threads(stack.load_stack(), {"ort_threads": 1, "ct2_threads": 2, "llama_threads": 1})
    stages = applied["stages"]
    assert stages["vad"]["settings"]["intra_op_num_threads"] == 1
    assert stages["tts"]["settings"]["intra_op_num_threads"] == 1
    assert stages["stt"]["settings"]["cpu_threads"] == 2 and stages["llm"]["settings"]["n_threads"] == 1
    assert stack.load_stack()["stages"]["stt"]["settings"]["cpu_threads"] == 2  # the original is untouched
    with pytest.raises(ConfigError, match="unknown thread keys"):
        pipeline.apply_threads(stack.load_stack(), {"gpu_threads": 1})


@pytest.fixture(scope="module")
def runner(provisioned):
    with pipeline.PipelineRunner(stack.load_stack(), max_tokens=24, utterance_timeout_s=120) as r:
        r.start()
        yield r


@pytest.mark.integration
def test_real_utterance_has_an_ordered_timeline(runner):
    row = runner.run(read_audio(CLIP), "en", keep_audio=True, id="0880")
    assert row["status"] == "ok", row
    assert "ill" in row["transcript"].lower() and "young man" in row["transcript"].lower()
    assert row["answer"].strip()
    order = ["vad_ms", "llm_start_ms", "llm_first_token_ms", "first_sentence_ms", "first_audio_ms", "last_audio_ms"]
    values = [row[k] for k in order]
    assert all(v >= 0 for v in values) and values == sorted(values), dict(zip(order, values))
    assert row["stt_ms"] > 0 and row["llm_start_ms"] >= row["stt_ms"]
    assert row["ttfa_ms"] == pytest.approx(row["endpoint_ms"] + row["first_audio_ms"])
    assert row["audio_path_ms"] == pytest.approx(row["stt_ms"] + row["audio_path_tts_ms"])
    assert row["projected_ttfa_ms"] > row["endpoint_ms"]
    assert row["audio_sample_rate"] == 22050 and len(row["audio"]) / 22050 == pytest.approx(row["answer_audio_s"])
    memory = runner.load_info["memory"]
    assert memory["gguf_mapping"]["file_bytes"] == 253113024 and memory["pss_bytes"] <= memory["rss_bytes"]


@pytest.mark.integration
def test_spanish_8k_prompt_is_resampled_and_spoken_by_espeak(runner):
    row = runner.run(read_audio(ES_CLIP), "es", id="auth-thankyou")
    assert row["status"] == "ok", row
    assert row["input_sample_rate"] == 8000 and "gracias" in row["transcript"].lower()


@pytest.mark.integration
def test_silence_and_noise_are_explained_not_crashed(runner):
    silent = runner.run(np.zeros(32000, np.float32), "en")
    assert silent["status"] == "silent audio" and "dBFS" in silent["reason"]
    noise = runner.run((np.random.default_rng(0).standard_normal(32000) * 0.01).astype(np.float32), "en")
    assert noise["status"] == "no speech"


@pytest.mark.integration
def test_bad_input_shape_is_a_row(runner):
    row = runner.run(np.zeros((2, 100), np.float32), "en")
    assert row["status"] == "bad input" and "1-D" in row["reason"] or "mono" in row["reason"]


@pytest.mark.integration
def test_a_hanging_or_crashing_stage_costs_one_utterance(provisioned):
    with pipeline.PipelineRunner(stack.load_stack(), max_tokens=8, utterance_timeout_s=20) as r:
        r.start(warm=False)
        hung = r.run(read_audio(CLIP), "en", fault="hang")
        assert hung["status"] == "timeout" and "exceeded 20 s" in hung["reason"]
        crashed = r.run(read_audio(CLIP), "en", fault="crash")
        assert crashed["status"] == "crashed" and "exit code 3" in crashed["reason"]
        r.utterance_timeout_s = 180  # the recovery utterance runs on a cold worker: no timing bet on a busy machine
        after = r.run(read_audio(CLIP), "en", isolated=False)
        assert after["status"] == "ok" and r.restarts == 2


class _SilentLLM(Stage):
    """An LLM stage whose model answers nothing (e.g. it emits only a stop token)."""

    kind = "llm"

    def __init__(self):
        super().__init__("silent-llm")
        self.stop = []

    def _load(self):
        pass

    def _check_input(self, x):
        return x

    def _produce(self, x, mark, meta):
        meta["pieces"] = 0
        return iter(())

    def _join(self, parts, meta):
        return ""

    def warmup_input(self):
        return "hi"


@pytest.mark.integration
def test_an_llm_that_emits_nothing_is_recorded(provisioned):
    loaded = pipeline.LoadedStack.load({"stages": {k: v for k, v in stack.load_stack()["stages"].items()
                                                  if k != "llm"}}, spanish_tts=None)
    llm = _SilentLLM()
    llm.load()
    loaded.stages["llm"] = llm
    row = loaded.process(read_audio(CLIP).samples, "en")
    assert row["status"] == "empty answer" and row["transcript"]


def test_thread_splits_cover_every_combination():
    from saraikit.experiments import e2e

    splits = e2e.thread_splits((1, 2))
    assert len(splits) == 8 and len({s.label() for s in splits}) == 8
    assert splits[0].as_dict() == {"ort_threads": 1, "ct2_threads": 1, "llama_threads": 1}


@pytest.mark.integration
def test_thread_budget_bookkeeping(provisioned, tmp_store):
    from saraikit.data import datasets
    from saraikit.experiments import e2e

    clip = datasets.filter(datasets.librivox_en(), limit=1).clips
    splits = [e2e.ThreadSplit(1, 1, 1), e2e.ThreadSplit(2, 1, 1)]
    run = tmp_store.start_run(target="unit")
    table, samples = e2e.thread_budget(stack.load_stack(), clip, splits, max_tokens=8, store=tmp_store, run_id=run)
    assert set(table["split"]) == {s.label() for s in splits}
    assert table.iloc[0]["vs_best"] == "best" and (table["n"] == 1).all()
    assert table["ttfa_p50_ms"].is_monotonic_increasing
    stored = tmp_store.trials(experiment="thread_budget")
    assert len(stored) == 2 and sorted(len(s) for s in stored["samples"]) == [1, 1]


# --- end-to-end conclusions and KPI declarations (synthetic rows, no models) -------------------------------


def _e2e_rows(n=8, ttfa=1364.0):
    import pandas as pd

    rng = __import__("numpy").random.default_rng(0)
    rows = []
    for i in range(n):
        jitter = rng.normal(0, 10)
        rows.append({"id": f"u{i}", "language": "en" if i % 2 else "es", "status": "ok", "reason": "",
                     "endpoint_ms": 100.0, "vad_ms": 5.0, "llm_start_ms": 900.0 + jitter,
                     "first_sentence_ms": 1100.0 + jitter, "first_audio_ms": ttfa - 100 + jitter,
                     "ttfa_ms": ttfa + jitter, "audio_path_ms": 990.0 + jitter, "stt_ms": 880.0 + jitter,
                     "llm_ttft_ms": 140.0 + jitter})
    rows.append({"id": "bad", "language": "en", "status": "silent audio", "reason": "no signal"})
    return pd.DataFrame(rows)


def test_e2e_conclusions_are_computed_and_judged_by_the_one_rule():
    import pandas as pd

    from saraikit.experiments import e2e

    rows = _e2e_rows()
    load_info = {"load_wall_s": 2.5, "memory": {"rss_bytes": 700 * 2**20, "pss_bytes": 680 * 2**20,
                                                "gguf_mapping": {"rss_bytes": 235 * 2**20}}}
    budget = pd.DataFrame([{"split": "ORT 2 / CT2 2 / llama 2", "ttfa_p50_ms": 1360.0, "n": 4, "vs_best": "best"}])
    lines = e2e.conclusion_lines(rows, 1200.0, load_info, {"ttfa_ms": 2500.0}, budget, 500.0, 240.0)
    assert lines[0].startswith("- Voice-to-voice time to first audio: P50 **1364 ms**") or "P50 **13" in lines[0]
    assert "fails the 500 ms goal" in lines[0] and "fails the 240 ms goal" in lines[1]
    assert "dominant stage is **STT**" in lines[2]
    assert "Projected (sum of isolated medians, derived) 1200 ms" in lines[3] and "slower than the sum" in lines[3]
    assert "235 MiB is the mapped GGUF" in lines[5]
    assert lines[-1].startswith("- 1 utterance(s) did not complete: bad: silent audio")


def test_e2e_kpis_name_their_sources_and_keep_the_projection_apart(tmp_store):
    from saraikit.core.store import Figure, Trial
    from saraikit.report import kpi
    from saraikit.report.e2e_records import record_e2e

    run = tmp_store.start_run(target="box")
    rows = _e2e_rows()
    trials = [tmp_store.record(run, Trial("e2e", {"u": i}, [Figure("ttfa_ms", 1.0, "ms", n=1)])) for i in range(3)]
    load = tmp_store.record(run, Trial("e2e_load", {}, [Figure("stack_rss", 1.0, "bytes", n=1)]))
    record_e2e(tmp_store, run, rows, trials, load, {"rss_bytes": 700 * 2**20, "pss_bytes": None}, 1200.0)
    history = kpi.history(tmp_store, "box")
    per_language = history[(history["kpi"] == "v2v_ttfa_p50_ms") & history["dataset"].str.endswith((", en", ", es"))]
    assert sorted(per_language["dataset"]) == ["2-4 s utterances, en", "2-4 s utterances, es"]
    assert per_language["n"].sum() == 8
    table = history[~history["dataset"].str.endswith((", en", ", es"))].set_index("kpi")
    assert table.loc["v2v_ttfa_p50_ms", "provenance"] == "measured" and table.loc["v2v_ttfa_p50_ms", "n"] == 8
    assert table.loc["v2v_ttfa_projected_p50_ms", "provenance"] == "derived"
    assert table.loc["v2v_ttfa_projected_p50_ms", "value"] == 1200.0
    assert list(table.loc["stack_rss_mib", "source_trials"]) == [load]
    assert "stack_pss_mib" not in table.index  # no PSS reading, no row
    assert table.loc["v2v_ttfa_p50_ms", "dataset"] == "2-4 s utterances, en+es"
