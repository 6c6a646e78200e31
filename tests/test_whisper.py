"""faster-whisper STT: constructor checks, then the stage on the real tiny.en and base models."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError, DataError
from saraikit.data.audio import Audio
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.whisper import FasterWhisperSTT

from stage_helpers import LIBRIVOX, LIBRIVOX_REFERENCE, assert_well_formed, librivox, stt_tiny, words  # noqa: F401


def test_constructor_checks():
    with pytest.raises(ConfigError, match="beam_size"):
        FasterWhisperSTT("unused", beam_size=0)
    with pytest.raises(ConfigError, match="set by the stage"):
        FasterWhisperSTT("unused", transcribe_options={"vad_filter": True})


@pytest.mark.integration
def test_stt_tiny_en_transcribes_librivox(stt_tiny, librivox):
    result = stt_tiny.run(librivox)
    transcript = result.value
    # Observed: "He was not an old-sposed young man." (tiny.en mishears "ill-disposed" at every compute type).
    assert "young man" in words(transcript.text)
    assert transcript.text.startswith("He was not an")
    assert transcript.language == "en" and transcript.reason is None and transcript.status == "ok"
    assert [e.name for e in result.events] == ["start", "prepared", "first_output", "end"]
    assert_well_formed(result, stt_tiny.name)
    assert result.meta["audio_s"] == pytest.approx(2.99, abs=0.01)


@pytest.mark.integration
def test_stt_whisper_base_hears_ill_disposed(model_paths, librivox):
    stage = FasterWhisperSTT(model_paths["whisper-base"], Ct2WhisperConfig(compute_type="int8", cpu_threads=1))
    stage.load()
    transcript = stage.run(librivox).value
    assert LIBRIVOX_REFERENCE in words(transcript.text.replace("-", " "))
    assert transcript.language == "en"


@pytest.mark.integration
def test_stt_rejects_wrong_sample_rate_and_bad_arrays(stt_tiny, librivox):
    low = Audio(librivox.samples[::2].copy(), 8000, LIBRIVOX)
    with pytest.raises(DataError, match=r"expected 16000 Hz audio, got 8000 Hz .*ensure_16k"):
        stt_tiny.run(low)
    with pytest.raises(DataError, match="mono"):
        stt_tiny.run(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(DataError, match="dtype int16"):
        stt_tiny.run(np.zeros(100, dtype=np.int16))


@pytest.mark.integration
def test_stt_silent_and_empty_audio_give_an_explicit_empty_result(stt_tiny):
    for samples, reason in ((np.zeros(16000, dtype=np.float32), "silent audio"),
                            (np.zeros(0, dtype=np.float32), "empty audio")):
        result = stt_tiny.run(samples)
        assert result.value.text == "" and result.value.segments == []
        assert reason in result.value.reason and result.value.status == "empty"
        assert [e.name for e in result.events] == ["start", "end"]  # the model was not run
