import math

import numpy as np
import pytest

from saraikit.data.audio import Audio
from saraikit.core.errors import ConfigError, DataError
from saraikit.data.noise import NOISE_RMS, PEAK_LIMIT, babble, measure_snr, mix_at_snr, white_noise

RATE = 16000


def speech_like(seconds=1.0, seed=0, amplitude=0.3):
    """A tone with a syllable-rate envelope: a stand-in for speech with level changes."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed)
    return (amplitude * envelope * np.sin(2 * np.pi * (200 + 30 * seed) * t)).astype(np.float32)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("snr_db", [20, 10, 5, 0])
def test_mix_hits_the_requested_snr_on_the_mixed_components(snr_db):
    clean = speech_like()
    mixture = mix_at_snr(clean, white_noise(5000, seed=1), snr_db, seed=2)
    assert abs(measure_snr(mixture.clean, mixture.noise) - snr_db) < 0.1
    # The noise actually in the mixed signal, not just the returned component.
    noise_in_mix = mixture.mixed.astype(np.float64) - mixture.clean
    assert abs(measure_snr(mixture.clean, noise_in_mix) - snr_db) < 0.1
    assert mixture.measured_snr_db == pytest.approx(snr_db, abs=1e-3)
    assert mixture.mixed.dtype == np.float32 and mixture.mixed.shape == clean.shape


def test_known_gain_for_a_hand_checkable_case():
    # P_clean = 0.25**2 = 0.0625, P_noise = 1: 0 dB needs the noise at RMS 0.25, gain 0.25.
    clean = np.full(100, 0.25)
    noise = np.where(np.arange(100) % 2, 1.0, -1.0)
    mixture = mix_at_snr(clean, noise, 0.0, seed=0)
    assert mixture.noise_gain == pytest.approx(0.25)
    assert rms(mixture.noise) == pytest.approx(0.25)
    assert sorted(set(np.round(mixture.mixed, 6))) == [0.0, 0.5]
    assert not mixture.rescaled


def test_loud_mixture_is_scaled_down_with_snr_kept_and_recorded():
    clean = speech_like(amplitude=0.95)
    mixture = mix_at_snr(clean, white_noise(RATE, seed=3), 0, seed=0)
    assert mixture.rescaled and mixture.output_gain < 1.0
    assert np.max(np.abs(mixture.mixed)) <= PEAK_LIMIT + 1e-6
    assert abs(measure_snr(mixture.clean, mixture.noise)) < 0.1
    np.testing.assert_allclose(mixture.clean, clean * mixture.output_gain, atol=1e-6)


def test_short_noise_is_looped_and_the_seed_picks_the_segment():
    clean = speech_like()
    noise = white_noise(1000, seed=4)
    a = mix_at_snr(clean, noise, 10, seed=5)
    b = mix_at_snr(clean, noise, 10, seed=5)
    c = mix_at_snr(clean, noise, 10, seed=6)
    np.testing.assert_array_equal(a.mixed, b.mixed)
    assert a.noise_offset != c.noise_offset
    # Looping: the noise repeats with the noise's period.
    np.testing.assert_allclose(a.noise[:1000], a.noise[1000:2000], rtol=1e-6)


def test_audio_inputs_must_share_a_sample_rate():
    clean = Audio(speech_like(), RATE)
    with pytest.raises(DataError, match="16000 Hz but noise is 8000 Hz"):
        mix_at_snr(clean, Audio(white_noise(800), 8000), 10)
    assert mix_at_snr(clean, Audio(white_noise(800), RATE), 10).mixed.size == RATE


@pytest.mark.parametrize(
    "clean, noise, snr, error, message",
    [
        (np.zeros(100), np.ones(100), 10, DataError, "clean is digital silence"),
        (np.ones(100), np.zeros(100), 10, DataError, "noise is digital silence"),
        (np.array([]), np.ones(100), 10, DataError, "clean is empty"),
        (np.ones((2, 100)), np.ones(100), 10, DataError, "mono"),
        (np.array([1.0, np.nan]), np.ones(100), 10, DataError, "NaN"),
        (np.ones(100), np.ones(100), math.inf, ConfigError, "snr_db must be a finite"),
    ],
)
def test_bad_mix_inputs(clean, noise, snr, error, message):
    with pytest.raises(error, match=message):
        mix_at_snr(clean, noise, snr)


def test_measure_snr_hand_values_and_edges():
    assert measure_snr(np.full(10, 1.0), np.full(10, 0.1)) == pytest.approx(20.0)
    assert measure_snr(np.ones(10), np.zeros(10)) == math.inf
    with pytest.raises(DataError, match="10 samples but noise_component has 9"):
        measure_snr(np.ones(10), np.ones(9))


def test_white_noise_level_and_determinism():
    noise = white_noise(48000, seed=7)
    assert noise.dtype == np.float32 and noise.size == 48000
    assert rms(noise) == pytest.approx(NOISE_RMS, rel=0.02)
    np.testing.assert_array_equal(noise, white_noise(48000, seed=7))
    with pytest.raises(ConfigError, match="positive number of samples"):
        white_noise(0)


def test_babble_sums_several_equal_level_talkers():
    quiet, loud = speech_like(0.5, seed=1, amplitude=0.01), speech_like(0.7, seed=2, amplitude=0.9)
    clips = [quiet, loud, speech_like(0.3, seed=3), speech_like(0.9, seed=4)]
    mix = babble(clips, n_speakers=2, length=RATE, seed=0)
    assert mix.size == RATE and rms(mix) == pytest.approx(NOISE_RMS, rel=1e-4)
    # With all four talkers, the result is the sum of the four clips, each at unit RMS.
    everyone = babble(clips, n_speakers=4, length=RATE, seed=0)
    spectrum = np.abs(np.fft.rfft(everyone))
    peaks = [int(round(f)) for f in (200 + 30 * s for s in (1, 2, 3, 4))]  # 1 Hz bins for a 1 s signal
    levels = spectrum[peaks]
    assert levels.max() / levels.min() < 2.0  # equalised: the 0.01 and 0.9 amplitude talkers are comparable
    np.testing.assert_array_equal(everyone, babble(clips, n_speakers=4, length=RATE, seed=0))


def test_babble_bad_inputs():
    with pytest.raises(ConfigError, match="needs at least 4 clips, got 2"):
        babble([speech_like(), speech_like()], n_speakers=4, length=100)
    with pytest.raises(DataError, match="digital silence"):
        babble([np.zeros(100)], n_speakers=1, length=100)
    with pytest.raises(DataError, match="share one sample rate"):
        babble([Audio(speech_like(), RATE), Audio(speech_like(), 8000)], n_speakers=1, length=100)
