"""Task metrics: WER tables, and transcripts and the Piper round trip on real speech (integration)."""

from __future__ import annotations

import pytest

from saraikit.core.errors import DataError
from saraikit.experiments.quantize.tasks import encoder_transcripts, piper_round_trip, wer_reports, wer_table


def test_wer_table_pairs_each_candidate_with_fp32():
    ids = ["a", "b", "c", "d"]
    refs = ["turn on the lights", "set a timer", "what time is it", "call mom"]
    fp32 = wer_reports(ids, refs, refs, ["en"] * 4)
    worse = wer_reports(ids, refs, ["turn on the light", "set a timer", "what time is", "call mom"], ["en"] * 4)
    table = wer_table({"fp32": fp32, "int8": worse}).set_index("candidate")
    assert table.loc["fp32", "wer_pct"] == 0 and table.loc["fp32", "delta_wer_pp"] == 0
    assert table.loc["int8", "wer_pct"] == pytest.approx(100 * 2 / 13)  # 2 errors in 13 reference words
    assert table.loc["int8", "delta_wer_pp"] == pytest.approx(100 * 2 / 13)
    assert table.loc["int8", "delta_ci_low"] >= 0 and table.loc["int8", "n"] == 4
    mixed = wer_reports(["x", "y"], ["hola mundo", "hello world"], ["hola mundo", "hello"], ["es", "en"])
    assert list(mixed) == ["es", "en"] and mixed["en"].wer == 0.5 and mixed["es"].wer == 0.0
    with pytest.raises(DataError, match="no reports for the baseline"):
        wer_table({"int8": worse})
    with pytest.raises(DataError, match="must line up"):
        wer_reports(ids, refs, refs[:3], ["en"] * 4)


@pytest.mark.integration
def test_task_metrics_run_on_real_speech(model_paths):
    from saraikit.engines import whisper_export
    from saraikit.experiments import realinputs
    from saraikit.engines.whisper import FasterWhisperSTT

    clip = next(c for c in realinputs.speech_clips("en", "evaluation") if c.reference == "ten of clubs")
    encoder = whisper_export.default_export("whisper-tiny.en")
    text = encoder_transcripts(model_paths["whisper-tiny.en"], encoder, [clip])[0]
    assert "club" in text.lower()
    asr = FasterWhisperSTT(model_paths["whisper-tiny.en"], language="en")
    asr.load()
    voice = model_paths["piper-en_US-joe-medium"]
    spoken = piper_round_trip(voice, ["Turning off the lights in the living room."], asr)[0]
    assert "living room" in spoken.lower()

