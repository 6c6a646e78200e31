"""Piper TTS on the real voice (integration)."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import DataError
from saraikit.data.audio import ensure_16k, rms_dbfs
from saraikit.engines.piper import PiperTTS
from saraikit.engines.ort import OrtConfig, read_back_ort_options

from stage_helpers import assert_well_formed, stt_tiny, words  # noqa: F401  (stt_tiny is a fixture)


@pytest.fixture(scope="module")
def piper(model_paths) -> PiperTTS:
    stage = PiperTTS(model_paths["piper-en_US-joe-medium"], OrtConfig(intra_op_num_threads=1))
    stage.load()
    return stage


@pytest.mark.integration
def test_piper_says_hello_world(piper):
    result = piper.run("Hello world.")
    audio = result.value
    seconds = len(audio.samples) / audio.sample_rate
    assert audio.sample_rate == 22050 and audio.samples.dtype == np.float32
    assert 0.5 <= seconds <= 3.0  # observed about 0.9 s
    assert rms_dbfs(audio) > -30 and np.max(np.abs(audio.samples)) == pytest.approx(1.0)  # peak-normalized
    assert [e.name for e in result.events] == ["start", "phonemized", "first_output", "end"]
    assert_well_formed(result, piper.name)


@pytest.mark.integration
def test_piper_phoneme_ids_follow_piper_layout(piper):
    ids = piper.phoneme_ids("Hello world.")
    id_map = piper.voice_config.phoneme_id_map
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert ids[0] == id_map["^"][0] and ids[-1] == id_map["$"][0]
    assert np.all(ids[1:-1:2] == id_map["_"][0])  # PAD after every phoneme
    assert ids[-3] == id_map["."][0]
    feeds = piper.feeds(ids)
    assert feeds["input"].shape == (1, len(ids)) and feeds["input_lengths"].tolist() == [len(ids)]
    assert feeds["scales"].tolist() == pytest.approx([0.667, 1.0, 0.8])
    with pytest.raises(DataError, match="exactly one sentence"):
        piper.phoneme_ids("One sentence. Two sentences.")


@pytest.mark.integration
def test_piper_streams_one_part_per_sentence(piper):
    stream = piper.stream("The sun is up. It is warm! Shall we go?")
    parts = list(stream)
    assert len(parts) == 3 and all(len(p.samples) > 0.2 * 22050 for p in parts)
    result = stream.result
    assert len(result.value.samples) == sum(len(p.samples) for p in parts)
    assert [e.name for e in result.events] == ["start", "phonemized", "first_output", "output", "output", "end"]
    assert_well_formed(result, piper.name)


@pytest.mark.integration
def test_piper_empty_text_and_session_options(piper):
    result = piper.run("")
    assert len(result.value.samples) == 0 and result.meta["reason"] == "no phonemes in the text"
    assert read_back_ort_options(piper.session)["intra_op_num_threads"] == 1  # our OrtConfig reached the session


@pytest.mark.integration
def test_piper_to_whisper_round_trip(piper, stt_tiny):
    speech = piper.run("The quick brown fox jumps over the lazy dog.").value
    transcript = stt_tiny.run(ensure_16k(speech)).value
    assert "quick brown fox" in words(transcript.text)  # observed: the sentence, verbatim
