"""Silero VAD: the segment rules (no model), then the stage on the real model."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError, DataError
from saraikit.data.audio import Audio
from saraikit.engines.ort import OrtConfig
from saraikit.engines.vad import SileroVAD, segments_from_probs

from stage_helpers import assert_well_formed, librivox  # noqa: F401  (fixture)


def probs_from(pattern: str) -> np.ndarray:
    """'s' = speech (0.9), '-' = silence (0.05), 'm' = in between (0.4): one char per 512-sample window."""
    return np.array([{"s": 0.9, "-": 0.05, "m": 0.4}[c] for c in pattern], dtype=np.float32)


def segments(pattern: str, pad_ms: float = 0, min_silence_ms: float = 100, min_speech_ms: float = 250):
    probs = probs_from(pattern)
    return segments_from_probs(probs, len(probs) * 512, 512, 16000, 0.5, 0.35, min_silence_ms, min_speech_ms,
                               pad_ms)


def test_segments_from_probs_rules():
    window = 512 / 16000  # 32 ms
    # 10 windows of speech, 5 of silence (160 ms >= 100 ms), 10 of speech.
    two = segments("-" * 3 + "s" * 10 + "-" * 5 + "s" * 10 + "-" * 6)
    assert two == [pytest.approx((3 * window, 13 * window)), pytest.approx((18 * window, 28 * window))]
    # A 64 ms pause is shorter than min_silence: one segment.
    assert len(segments("s" * 10 + "--" + "s" * 10 + "-" * 6)) == 1
    # In-between probabilities keep speech going (hysteresis) but never start it.
    assert segments("s" * 10 + "m" * 20 + "-" * 6) == [pytest.approx((0, 30 * window))]
    assert segments("m" * 30) == []
    # Speech shorter than min_speech (5 windows = 160 ms < 250 ms) is dropped.
    assert segments("-" * 3 + "s" * 5 + "-" * 10) == []
    # Speech open at the end ends where its trailing silence began, not at the clip's end.
    assert segments("s" * 10 + "--") == [pytest.approx((0, 10 * window))]
    assert segments("-" + "s" * 10) == [pytest.approx((window, 11 * window))]


def test_segments_padding_is_clipped_and_merges_overlaps():
    window = 512 / 16000
    # 100 ms pads overlap across a 160 ms gap: one segment; the start is clipped at 0.
    padded = segments("s" * 10 + "-" * 5 + "s" * 10 + "-" * 6, pad_ms=100)
    assert padded == [pytest.approx((0, 25 * window + 0.1))]
    # The end is clipped at the clip's length.
    assert segments("-" * 5 + "s" * 10 + "--", pad_ms=100) == [pytest.approx((5 * window - 0.1, 17 * window))]
    assert segments("", pad_ms=30) == []


def test_constructor_checks():
    with pytest.raises(ConfigError, match="threshold"):
        SileroVAD("unused.onnx", threshold=1.5)


@pytest.fixture(scope="module")
def vad(model_paths) -> SileroVAD:
    stage = SileroVAD(model_paths["silero-vad"], OrtConfig(intra_op_num_threads=1))
    stage.load()
    return stage


@pytest.mark.integration
def test_vad_finds_speech_in_librivox(vad, librivox):
    result = vad.run(librivox)
    duration = len(librivox.samples) / librivox.sample_rate
    assert len(result.value) >= 1
    assert all(0 <= start < end <= duration for start, end in result.value)
    end = vad.end_of_speech(librivox)
    assert 2.0 < end <= duration  # observed 2.846 s of a 2.99 s clip
    assert [e.name for e in result.events] == ["start", "probabilities", "first_output", "end"]
    assert_well_formed(result, vad.name)
    assert result.meta["n_windows"] == int(np.ceil(len(librivox.samples) / 512))


@pytest.mark.integration
def test_vad_end_of_speech_ignores_trailing_silence(vad, librivox):
    padded = np.concatenate([librivox.samples, np.zeros(24000, dtype=np.float32)])
    assert vad.end_of_speech(padded) == pytest.approx(vad.end_of_speech(librivox), abs=0.1)


@pytest.mark.integration
def test_vad_finds_nothing_in_silence_or_empty_audio(vad):
    assert vad.speech_segments(np.zeros(32000, dtype=np.float32)) == []
    assert vad.end_of_speech(np.zeros(32000, dtype=np.float32)) is None
    assert vad.speech_segments(np.zeros(0, dtype=np.float32)) == []


@pytest.mark.integration
def test_vad_probabilities_match_faster_whisper(vad, librivox):
    from faster_whisper.vad import SileroVADModel

    reference = SileroVADModel(str(vad.model_path))
    padded = np.pad(librivox.samples, (0, -len(librivox.samples) % 512))
    expected = reference(padded.copy()).reshape(-1)
    ours = vad.speech_probs(librivox.samples)
    assert ours.shape == expected.shape
    # faster-whisper zeroes the last window's tail in place (a side effect of its context view); compare the rest.
    np.testing.assert_allclose(ours[:-1], expected[:-1], atol=1e-4)


@pytest.mark.integration
def test_vad_rejects_wrong_sample_rate(vad):
    with pytest.raises(DataError, match="expected 16000 Hz audio, got 8000 Hz"):
        vad.run(Audio(np.zeros(8000, dtype=np.float32), 8000))
