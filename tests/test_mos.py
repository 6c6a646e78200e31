from pathlib import Path

import numpy as np
import pytest
from scipy.signal import get_window, stft

from saraikit.data.audio import Audio, read_audio
from saraikit.core.errors import DataError
from saraikit.quality.mos import (
    HOP,
    LABEL,
    N_FFT,
    WINDOW_SAMPLES,
    Dnsmos,
    _mel_filters,
    _window_starts,
    dnsmos_figures,
    dnsmos_frame,
    mel_features,
)
from saraikit.data.noise import mix_at_snr, white_noise

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CLIP = LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0890.wav"  # 5.3 s: one DNSMOS window


def test_mel_features_match_an_independent_stft():
    # scipy's STFT with even (= numpy "reflect") boundary extension is the same
    # framing as librosa's centred STFT; its "spectrum" scaling divides by sum(window).
    segment = np.random.default_rng(0).standard_normal(WINDOW_SAMPLES - HOP) * 0.1
    ours = mel_features(segment)
    assert ours.shape == (900, 120) and ours.dtype == np.float32

    window = get_window("hann", N_FFT)
    _, _, spectrum = stft(segment, window=window, nperseg=N_FFT, noverlap=N_FFT - HOP, boundary="even",
                          padded=False, detrend=False, scaling="spectrum")
    power = np.abs(spectrum * window.sum()) ** 2
    mel = _mel_filters() @ power
    db = 10 * np.log10(np.maximum(1e-10, mel / mel.max()))
    expected = (np.maximum(db, db.max() - 80) + 40) / 40
    np.testing.assert_allclose(ours, expected.T, atol=1e-4)


def test_mel_features_are_scaled_like_dnsmos():
    # The loudest bin maps to (0 + 40) / 40 = 1; nothing is more than 80 dB below it.
    features = mel_features(np.random.default_rng(1).standard_normal(WINDOW_SAMPLES - HOP))
    assert features.max() == pytest.approx(1.0)
    assert features.min() >= (-80 + 40) / 40 - 1e-6


@pytest.mark.parametrize(
    "n_samples, expected",
    [
        (WINDOW_SAMPLES, [0]),  # 9.01 s: one window
        (10 * 16000, [0]),  # int(10 - 9.01) + 1 = 1
        (11 * 16000, [0, 16000]),
        (20 * 16000 + 5, list(range(0, 11 * 16000, 16000))),
    ],
)
def test_windows_start_every_second(n_samples, expected):
    assert _window_starts(n_samples) == expected


@pytest.fixture(scope="module")
def scorer(provisioned):
    return Dnsmos()


@pytest.mark.integration
def test_dnsmos_on_real_speech_is_in_range_and_deterministic(scorer):
    audio = read_audio(CLIP, target_sr=16000)
    first, second = scorer(audio), scorer(audio)
    assert first == second
    assert first["label"] == LABEL and first["skipped"] is None
    assert first["n_windows"] == 1  # 5.3 s doubled to 10.6 s: int(10 - 9.01) + 1
    for key in ("sig", "bak", "ovrl", "p808_mos"):
        assert 1.0 < first[key] < 5.0, (key, first[key])


@pytest.mark.integration
def test_dnsmos_background_score_falls_with_added_noise(scorer):
    audio = read_audio(CLIP, target_sr=16000)
    noise = white_noise(audio.samples.size, seed=1)
    clean = scorer(audio)
    at_20 = scorer(mix_at_snr(audio.samples, noise, 20, seed=0).mixed)
    at_0 = scorer(mix_at_snr(audio.samples, noise, 0, seed=0).mixed)
    assert clean["bak"] > at_20["bak"] + 0.3 > at_0["bak"] + 0.6
    assert clean["ovrl"] > at_0["ovrl"] + 0.5


@pytest.mark.integration
def test_short_clips_are_skipped_with_a_reason_and_bad_rates_refused(scorer):
    result = scorer(np.zeros(8000, dtype=np.float32))
    assert result["skipped"] == "clip of 0.50 s is shorter than 1 s"
    assert np.isnan(result["ovrl"]) and result["n_windows"] == 0
    with pytest.raises(DataError, match="needs 16000 Hz, got 8000 Hz"):
        scorer(Audio(np.zeros(8000, dtype=np.float32), 8000))
    with pytest.raises(DataError, match=r"in \[-1, 1\]"):
        scorer(np.full(16000, 2.0, dtype=np.float32))


@pytest.mark.integration
def test_dnsmos_frame_scores_files_one_row_each(scorer, tmp_path):
    import soundfile as sf

    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(4000, dtype=np.float32), 16000)
    frame = dnsmos_frame([CLIP, short], scorer)
    assert list(frame["path"]) == [str(CLIP), str(short)]
    assert frame.loc[0, "ovrl"] == pytest.approx(scorer(read_audio(CLIP, 16000))["ovrl"])
    assert frame.loc[1, "skipped"].startswith("clip of 0.25 s")


@pytest.mark.integration
def test_dnsmos_figures_average_scored_clips_and_count_skipped(scorer, tmp_path, tmp_store):
    import soundfile as sf

    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(4000, dtype=np.float32), 16000)
    clips = sorted(LIBRIVOX.glob("*0880.wav")) + sorted(LIBRIVOX.glob("*0890.wav"))
    frame = dnsmos_frame([*clips, short], scorer)
    figures = {figure.metric: figure for figure in dnsmos_figures(frame)}
    assert set(figures) == {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808_mos"}
    ovrl = figures["dnsmos_ovrl"]
    assert ovrl.value == pytest.approx(frame["ovrl"].iloc[:2].mean())
    assert (ovrl.n, ovrl.provenance, ovrl.extra["n_skipped"], ovrl.extra["label"]) == (2, "estimated", 1, LABEL)
    assert ovrl.extra["ci_low"] <= ovrl.value <= ovrl.extra["ci_high"]

    from saraikit.core.store import Trial

    run_id = tmp_store.start_run()
    tmp_store.record(run_id, Trial("dnsmos", {"voice": "librivox"}, figures=list(figures.values())))
    stored = tmp_store.results(experiment="dnsmos").set_index("metric")
    assert stored.loc["dnsmos_ovrl", "value"] == pytest.approx(ovrl.value)
