import math

import numpy as np
import pytest
import soundfile as sf

from saraikit.data.audio import (
    Audio,
    check_audio,
    duration_s,
    ensure_16k,
    peak_dbfs,
    read_16k,
    read_audio,
    rms_dbfs,
    silence_reason,
)
from saraikit.core.errors import DataError


def sine(seconds, sample_rate, amplitude=0.5, frequency=440.0):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def write_wav(path, samples, sample_rate=16000):
    sf.write(path, samples, sample_rate, subtype="PCM_16")
    return path


def test_read_mono_keeps_samples_and_rate(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(0.5, 16000))
    audio = read_audio(path)
    assert audio.sample_rate == 16000
    assert audio.path == path
    assert audio.samples.dtype == np.float32
    assert audio.samples.ndim == 1
    assert len(audio.samples) == 8000
    assert np.max(np.abs(audio.samples - sine(0.5, 16000))) < 1e-4
    assert duration_s(audio) == 0.5


def test_stereo_is_averaged_to_mono(tmp_path):
    left = np.full(1000, 0.4, dtype=np.float32)
    right = np.full(1000, 0.2, dtype=np.float32)
    path = write_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1))
    audio = read_audio(path)
    assert audio.samples.shape == (1000,)
    assert np.allclose(audio.samples, 0.3, atol=1e-4)


def test_resample_44k1_to_16k_gives_the_right_length_and_level(tmp_path):
    path = write_wav(tmp_path / "cd.wav", sine(1.0, 44100, amplitude=0.5), sample_rate=44100)
    audio = read_audio(path, target_sr=16000)
    assert audio.sample_rate == 16000
    assert len(audio.samples) == 16000
    assert audio.samples.dtype == np.float32
    # a 440 Hz tone survives: RMS of a 0.5 sine is 0.5/sqrt(2)
    assert rms_dbfs(audio) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.1)


def test_resample_odd_length_rounds_up(tmp_path):
    path = write_wav(tmp_path / "odd.wav", sine(0.01, 44100), sample_rate=44100)  # 441 samples
    assert len(read_audio(path, target_sr=16000).samples) == 160
    path = write_wav(tmp_path / "odd2.wav", np.zeros(1000, dtype=np.float32), sample_rate=44100)
    assert len(read_audio(path, target_sr=16000).samples) == math.ceil(1000 * 16000 / 44100)


def test_same_rate_target_is_a_no_op(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(0.1, 8000), sample_rate=8000)
    assert len(read_audio(path, target_sr=8000).samples) == 800


def test_samples_stay_within_full_scale(tmp_path):
    path = tmp_path / "loud.wav"
    sf.write(path, np.array([1.5, -2.0, 0.5] * 100, dtype=np.float32), 16000, subtype="FLOAT")
    samples = read_audio(path).samples
    assert samples.max() == 1.0
    assert samples.min() == -1.0


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.wav: no such audio file"):
        read_audio(tmp_path / "nope.wav")


def test_text_file_named_wav_is_rejected(tmp_path):
    path = tmp_path / "fake.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(DataError, match=r"fake\.wav: not a readable audio file"):
        read_audio(path)


def test_empty_wav_is_rejected(tmp_path):
    path = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(DataError, match=r"empty\.wav: empty audio \(0 samples\)"):
        read_audio(path)


def test_bad_target_rate_is_rejected(tmp_path):
    path = write_wav(tmp_path / "a.wav", sine(0.1, 16000))
    with pytest.raises(DataError, match="target sample rate must be positive"):
        read_audio(path, target_sr=0)


def test_levels():
    full_sine = Audio(sine(1.0, 16000, amplitude=1.0, frequency=1000.0), 16000)
    assert rms_dbfs(full_sine) == pytest.approx(-3.01, abs=0.01)
    assert peak_dbfs(full_sine) == pytest.approx(0.0, abs=0.01)
    half = Audio(np.array([0.5, -0.25], dtype=np.float32), 16000)
    assert peak_dbfs(half) == pytest.approx(-6.02, abs=0.01)
    zeros = Audio(np.zeros(100, dtype=np.float32), 16000)
    assert rms_dbfs(zeros) == -math.inf
    assert peak_dbfs(zeros) == -math.inf


def test_check_audio_accepts_clean_speech_like_audio():
    assert check_audio(Audio(sine(1.0, 16000), 16000)) == []


def test_check_audio_silent():
    zeros = Audio(np.zeros(16000, dtype=np.float32), 16000)
    assert check_audio(zeros) == ["silent (peak -inf dBFS)"]
    quiet = Audio(np.full(16000, 0.0001, dtype=np.float32), 16000)
    assert check_audio(quiet) == ["silent (peak -80.0 dBFS)"]


def test_check_audio_too_short():
    assert check_audio(Audio(sine(0.05, 16000), 16000)) == ["too short (0.05 s < 0.1 s)"]
    assert check_audio(Audio(sine(0.05, 16000), 16000), min_seconds=0.01) == []


def test_check_audio_clipped():
    samples = np.full(1000, 0.1, dtype=np.float32)
    samples[:16] = 1.0
    samples[16:32] = -1.0
    assert check_audio(Audio(samples, 1000), min_seconds=0) == [
        "clipped (3.2% of samples at full scale)"
    ]


def test_check_audio_reports_several_problems():
    audio = Audio(np.zeros(10, dtype=np.float32), 16000)
    assert check_audio(audio) == ["too short (0.00 s < 0.1 s)", "silent (peak -inf dBFS)"]


def test_headerless_raw_audio_is_read_as_16k_pcm16(tmp_path):
    samples = (np.arange(1600) % 200 - 100).astype("<i2") * 100
    path = tmp_path / "speech.raw"
    path.write_bytes(samples.tobytes())
    assert np.allclose(read_16k(path), samples / 32768.0)
    empty = tmp_path / "empty.raw"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_16k(empty)


def test_ensure_16k_resamples_and_keeps_pitch():
    rate = 8000
    t = np.arange(rate) / rate
    tone = Audio((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    samples = ensure_16k(tone)
    assert samples.dtype == np.float32 and len(samples) == 16000
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16000 / len(samples) == pytest.approx(440, abs=2)
    same = Audio(np.zeros(5, dtype=np.float32), 16000)
    assert np.array_equal(ensure_16k(same), same.samples)


def test_reading_at_16k_and_ensure_16k_resample_alike(tmp_path):
    path = write_wav(tmp_path / "tone.wav", sine(0.5, 8000), 8000)
    read_at_16k = read_audio(path, target_sr=16000)
    assert read_at_16k.sample_rate == 16000
    assert np.array_equal(read_at_16k.samples, ensure_16k(read_audio(path)))


def test_silence_reason():
    assert "empty" in silence_reason(np.zeros(0, dtype=np.float32))
    assert "silent" in silence_reason(np.zeros(100, dtype=np.float32))
    assert "silent" in silence_reason(np.full(100, 1e-4, dtype=np.float32))  # -80 dBFS
    assert silence_reason(np.full(100, 0.1, dtype=np.float32)) is None
