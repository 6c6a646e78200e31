"""Endpointing as a live VAD sees it, early (speculative) STT, per-language stages and the pipeline options."""

import numpy as np
import pytest

from saraikit.core.errors import ConfigError
from saraikit.data.audio import read_audio
from saraikit.engines import pipeline
from saraikit.engines.endpointing import early_stt_saving_ms, silence_onsets
from saraikit.models import stack

CLIP = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
WINDOW, RATE = 512, 16000  # 32 ms windows


def _probs(pattern: str) -> np.ndarray:
    """'s' speech window (0.9), '.' silence (0.05), '~' in between (0.4: neither starts nor ends silence)."""
    return np.array([{"s": 0.9, ".": 0.05, "~": 0.4}[c] for c in pattern], dtype=np.float32)


def test_a_pause_where_speech_resumes_is_speculative_and_the_last_onset_is_final():
    probs = _probs("...ssss....ssss......")  # speech, a 4-window pause, speech, trailing silence
    onsets = silence_onsets(probs, len(probs) * WINDOW, WINDOW, RATE, 0.5, 0.35)
    assert [o.final for o in onsets] == [False, True]
    assert onsets[0].at_s == pytest.approx(7 * WINDOW / RATE) and onsets[0].lasted_ms == pytest.approx(4 * 32)
    assert onsets[1].at_s == pytest.approx(15 * WINDOW / RATE) and onsets[1].lasted_ms == pytest.approx(6 * 32)


def test_speculation_delay_skips_short_dips_and_hysteresis_holds():
    probs = _probs("ss.ssss~~ss......")  # a 1-window dip, then a '~' stretch that never ends speech
    onsets = silence_onsets(probs, len(probs) * WINDOW, WINDOW, RATE, 0.5, 0.35, speculate_after_ms=50)
    assert [o.final for o in onsets] == [True]  # the 32 ms dip is shorter than the 50 ms delay
    assert onsets[0].at_s == pytest.approx(11 * WINDOW / RATE)
    assert len(silence_onsets(probs, len(probs) * WINDOW, WINDOW, RATE, 0.5, 0.35)) == 2


def test_no_speech_gives_no_onset_and_speech_to_the_end_ends_at_the_clip_end():
    assert silence_onsets(_probs("......"), 6 * WINDOW, WINDOW, RATE, 0.5, 0.35) == []
    onsets = silence_onsets(_probs("..ssss"), 6 * WINDOW - 100, WINDOW, RATE, 0.5, 0.35)
    assert onsets[-1].final and onsets[-1].at_s == pytest.approx((6 * WINDOW - 100) / RATE)


def test_early_stt_saves_the_overlap_with_the_endpoint_wait_only():
    assert early_stt_saving_ms(endpoint_ms=100, stt_ms=250, speculate_after_ms=0) == 100
    assert early_stt_saving_ms(endpoint_ms=300, stt_ms=120, speculate_after_ms=0) == 120
    assert early_stt_saving_ms(endpoint_ms=100, stt_ms=250, speculate_after_ms=60) == 40
    assert early_stt_saving_ms(endpoint_ms=100, stt_ms=250, speculate_after_ms=150) == 0


@pytest.mark.parametrize("options, message", [
    ({"early": True}, "unknown option"),
    ({"early_stt": "yes"}, "true or false"),
    ({"early_stt": True, "speculate_after_ms": -5}, ">= 0"),
])
def test_bad_pipeline_options_are_refused_with_the_key(options, message):
    bad = {**stack.load_stack(), "pipeline": options}
    with pytest.raises(ConfigError, match=message):
        stack.validate_stack(bad, "my.yaml")


def test_stage_names_must_be_kinds_and_best_needs_a_search_first(tmp_path, monkeypatch):
    bad = stack.load_stack()
    bad["stages"]["sst"] = bad["stages"].pop("stt")
    with pytest.raises(ConfigError, match="'sst' is not a known kind"):
        stack.validate_stack(bad)
    monkeypatch.setenv("SARAIKIT_OUTPUTS", str(tmp_path))
    with pytest.raises(ConfigError, match="best_stack.yaml does not exist; run notebook 07_stack_search"):
        stack.load_stack("best", target="nowhere")


def test_per_language_stages_are_picked_by_suffix():
    loaded = pipeline.LoadedStack({"stt": "en-stt", "stt_es": "es-stt", "tts": "en-tts"}, {})
    assert loaded.stt_for("es") == "es-stt" and loaded.stt_for("es-419") == "es-stt"
    assert loaded.stt_for("en") == "en-stt" and loaded.tts_for("es") == "en-tts"
    assert pipeline.stage_kind("tts_es") == "tts" and pipeline.stage_kind("llm") == "llm"


@pytest.fixture(scope="module")
def early_runner(provisioned):
    early = {**stack.load_stack(), "pipeline": {"early_stt": True, "speculate_after_ms": 0}}
    with pipeline.PipelineRunner(early, max_tokens=12, utterance_timeout_s=180) as runner:
        runner.start()
        yield runner


@pytest.mark.integration
def test_early_stt_throws_away_the_transcript_when_speech_resumes(early_runner):
    clip = read_audio(CLIP, target_sr=16000).samples
    pause = np.zeros(int(0.06 * 16000), np.float32)  # shorter than the endpoint wait: speech resumes
    joined = np.concatenate([clip[:16000 * 2], pause, clip[:16000 * 2], np.zeros(8000, np.float32)])
    row = early_runner.run(joined, "en", isolated=False)
    assert row["status"] == "ok", row
    assert row["early_stt_discarded"] >= 1 and row["early_stt_wasted_ms"] > 0
    assert row["early_stt_saved_ms"] == pytest.approx(min(row["endpoint_ms"], row["stt_ms"]))
    assert row["ttfa_ms"] == pytest.approx(row["endpoint_ms"] + row["first_audio_ms"] - row["early_stt_saved_ms"])
    assert row["stt_input_s"] < len(joined) / 16000  # STT heard the clip up to the final onset, not the tail


@pytest.mark.integration
def test_late_stt_hears_up_to_the_endpoint_and_saves_nothing(provisioned):
    with pipeline.PipelineRunner(stack.load_stack(), max_tokens=8, utterance_timeout_s=180) as runner:
        clip = read_audio(CLIP, target_sr=16000).samples
        row = runner.run(np.concatenate([clip, np.zeros(16000, np.float32)]), "en", isolated=False)
    assert row["status"] == "ok", row
    assert "early_stt_saved_ms" not in row and "early_stt_discarded" not in row
    assert row["stt_input_s"] < len(clip) / 16000 + 0.5  # the extra second of silence is not transcribed


def test_a_bad_stage_fails_before_any_worker_starts(provisioned):
    bad = stack.load_stack()
    bad["stages"]["stt"] = {**bad["stages"]["stt"], "settings": {"compute_type": "int8", "beam": 2}}
    with pytest.raises(ConfigError, match="stack: stage 'stt': .*unknown setting.*beam"):
        pipeline.PipelineRunner(bad)
    missing = stack.load_stack()
    missing["stages"]["tts"] = {"model": "no-such-voice", "engine": "onnxruntime"}
    with pytest.raises(Exception, match="stage 'tts': .*no model named 'no-such-voice'"):
        pipeline.PipelineRunner(missing)


def test_speak_names_the_missing_best_stack(tmp_path, monkeypatch, capsys):
    from saraikit import cli

    monkeypatch.setenv("SARAIKIT_OUTPUTS", str(tmp_path))
    assert cli.main(["speak", CLIP, "--stack", "best", "--target", "box"]) == 2
    assert "box/best_stack.yaml does not exist" in capsys.readouterr().err


@pytest.mark.integration
def test_speak_runs_a_stack_file_on_a_wav(provisioned, tmp_path, capsys):
    from saraikit import cli

    path = tmp_path / "mine.yaml"
    path.write_text(__import__("yaml").safe_dump({**stack.load_stack(), "pipeline": {"early_stt": True}}))
    assert cli.main(["speak", CLIP, "--stack", str(path), "--max-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert ": ok; ttfa_ms" in out and "ill-disposed young man" in out


@pytest.mark.integration
def test_pipeline_options_may_change_per_utterance_in_a_warm_worker(early_runner):
    clip = read_audio(CLIP, target_sr=16000).samples
    late = early_runner.run(clip, "en", isolated=False, options={"early_stt": False, "first_chunk": "clause"})
    early = early_runner.run(clip, "en", isolated=False)  # back to the stack's own options
    assert late["status"] == early["status"] == "ok"
    assert "early_stt_saved_ms" not in late and early["early_stt_saved_ms"] > 0
    with pytest.raises(ConfigError, match=r"first_chunk must be one of \['sentence', 'clause', 'words'\], got 'word'"):
        early_runner.run(clip, "en", options={"first_chunk": "word"})
