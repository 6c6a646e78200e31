"""Real inputs for the default ONNX models: unit tests on small files, plus the real data (integration)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from saraikit.experiments import realinputs as r
from saraikit.data.datasets import Clip
from saraikit.core.errors import ConfigError, DataError

# ---------------------------------------------------------------------------
# Unit tests


def tone_clip(path, seconds=1.0, rate=16000, frequency=440.0):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)
    return Clip(id=path.stem, path=path, language="en", duration_s=seconds, sample_rate=rate, reference="x",
                source="test")


def test_evenly_spaced_selection_spans_the_pool_and_refuses_too_many():
    assert r._evenly(range(10), 3, "pool") == [0, 3, 6]
    assert r._evenly(range(4), None, "pool") == [0, 1, 2, 3]
    with pytest.raises(DataError, match="asked for 5 inputs, the pool holds 4"):
        r._evenly(range(4), 5, "pool")
    with pytest.raises(DataError, match="positive int"):
        r._evenly(range(4), 0, "pool")


def test_mel_features_are_one_whisper_window_per_clip(tmp_path):
    clips = [tone_clip(tmp_path / "a.wav"), tone_clip(tmp_path / "b.wav", rate=8000, frequency=880.0)]
    feeds = r.mel_features(clips)
    assert [list(f) for f in feeds] == [["mel"], ["mel"]]
    assert all(f["mel"].shape == (1, 80, 3000) and f["mel"].dtype == np.float32 for f in feeds)
    assert not np.array_equal(feeds[0]["mel"], feeds[1]["mel"])  # different tones, different features
    # 1 s of audio is 100 frames of content; the rest of the window is padding, identical for both clips.
    assert np.array_equal(feeds[0]["mel"][..., 200:], feeds[1]["mel"][..., 200:])
    assert np.array_equal(r.mel_features(clips, n=1)[0]["mel"], feeds[0]["mel"])


def test_sentence_splits_are_disjoint_and_deterministic():
    assert not set(r.SENTENCES_EN) & set(r.CALIBRATION_SENTENCES_EN)
    assert len(set(r.SENTENCES_EN)) == len(r.SENTENCES_EN) == 20
    assert r.sentences(4) == [r.SENTENCES_EN[i] for i in (0, 5, 10, 15)]
    assert r.sentences(split="calibration") == list(r.CALIBRATION_SENTENCES_EN)
    with pytest.raises(ConfigError, match="split"):
        r.sentences(2, split="test")


def test_models_without_a_recipe_are_a_config_error():
    with pytest.raises(ConfigError, match="no real-input recipe for model 'silero-vad'.*synthetic"):
        r.real_feeds("silero-vad", 2)
    with pytest.raises(ConfigError, match="no real-input recipe"):
        r.recipe("whisper-large-v3")
    assert r.recipe("whisper-base-encoder").kind == "whisper-encoder"
    assert r.recipe("piper-en_US-joe-medium").kind == "piper"


def test_multilingual_counts_put_english_first():
    assert r._split_counts(5, ("en", "es")) == {"en": 3, "es": 2}
    assert r._split_counts(1, ("en", "es")) == {"en": 1}
    assert r._split_counts(4, ("en",)) == {"en": 4}


# ---------------------------------------------------------------------------
# Real data and the real Piper voice


@pytest.mark.integration
def test_encoder_feeds_are_real_speech_and_deterministic():
    feeds = r.real_feeds("whisper-tiny.en", 3)
    again = r.real_feeds("whisper-tiny.en", 3)
    assert len(feeds) == 3
    for feed, same in zip(feeds, again):
        assert feed["mel"].shape == (1, 80, 3000) and feed["mel"].dtype == np.float32
        assert np.array_equal(feed["mel"], same["mel"])
        # Whisper's log-mel is clamped to [-1, 1.5] after scaling; speech uses a wide part of it.
        assert feed["mel"].min() >= -1.0 and feed["mel"].max() <= 1.5 and np.ptp(feed["mel"]) > 1.0
    assert all(c.language == "en" for c in r.encoder_clips("whisper-tiny.en", 10))
    assert {lang for langs in r.ENCODER_LANGUAGES.values() for lang in langs} == set(r.EVALUATION_SETS)
    with pytest.raises(DataError, match="the pool holds 10"):
        r.encoder_clips("whisper-tiny.en", 11)


@pytest.mark.integration
def test_calibration_and_evaluation_speech_share_no_clip():
    for language in ("en", "es"):
        calibration = {c.path for c in r.speech_clips(language, "calibration")}
        evaluation = {c.path for c in r.speech_clips(language, "evaluation")}
        assert calibration and evaluation and not calibration & evaluation
    assert {c.language for c in r.encoder_clips("whisper-base", 4, "calibration")} == {"en", "es"}
    untranscribed = r.speech_clips("en", "calibration")
    assert [c.id for c in untranscribed] == ["goforward", "numbers", "something", "tidigits/dhd.2934z"]
    assert all(2.0 < c.duration_s < 5.0 for c in untranscribed)  # seconds of speech, read as 16 kHz PCM16


@pytest.mark.integration
def test_piper_feeds_use_the_voice_symbols_and_deterministic_scales(model_paths):
    voice = model_paths["piper-en_US-joe-medium"]
    config = json.loads(voice.with_name(voice.name + ".json").read_text())
    feeds = r.real_feeds("piper-en_US-joe-medium", 4)
    assert len(feeds) == 4
    for feed in feeds:
        ids = feed["input"]
        assert ids.dtype == np.int64 and ids.shape[0] == 1 and ids.shape[1] > 20
        assert 0 <= ids.min() and ids.max() < config["num_symbols"]
        assert feed["input_lengths"].tolist() == [ids.shape[1]]
        assert feed["scales"].tolist() == [0.0, 1.0, 0.0] and feed["scales"].dtype == np.float32
    assert all(np.array_equal(a["input"], b["input"]) for a, b in zip(feeds, r.real_feeds("piper-en_US-joe-medium", 4)))
    noisy = r.phoneme_feeds(r.sentences(1), voice, noise=True)[0]["scales"]
    inference = config["inference"]
    assert noisy.tolist() == pytest.approx([inference["noise_scale"], inference["length_scale"], inference["noise_w"]])
    with pytest.raises(DataError, match="non-empty list"):
        r.phoneme_feeds("Hello there.", voice)
