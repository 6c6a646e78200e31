"""Predicted MOS with DNSMOS (P.835 SIG/BAK/OVRL and P.808), offline.

DNSMOS is a neural network trained to predict what listeners would answer in
a P.835 / P.808 listening test.  Its output is a *prediction*: every figure
here is labelled "predicted MOS (DNSMOS)", never "MOS".  A human listening
test (:mod:`saraikit.listening`) is the only source of a real MOS.

This follows ``speechmos.dnsmos`` (speechmos 0.0.1.1, itself Microsoft's
``DNSMOS/dnsmos_local.py``) step by step, with the provisioned model files
(``dnsmos-sig-bak-ovr`` = ``sig_bak_ovr.onnx``, ``dnsmos-p808`` =
``model_v8.onnx``).  We cannot call speechmos itself: its module imports
librosa at the top, and librosa is not installed here.  The only librosa
calls it makes are the P.808 mel spectrogram and ``power_to_db``, which are
re-written below in numpy.

The procedure:

- Input is 16 kHz mono float in [-1, 1].  A clip shorter than one window
  (9.01 s) is *repeated* (doubled until it is long enough), not zero-padded,
  exactly as DNSMOS does.  So a 3 s clip is scored on its own audio played
  about 4 times.  Clips under ``MIN_SECONDS`` (1 s) are not scored: they are
  returned with NaN scores and a ``skipped`` reason.
- Windows of 9.01 s start every 1 s; there are
  ``int(floor(len / 16000) - 9.01) + 1`` of them (on the repeated audio).
  Each window gives SIG, BAK, OVRL from ``sig_bak_ovr.onnx`` (raw outputs
  mapped through DNSMOS's fixed 2nd-degree polynomials, non-personalised
  variant) and a P.808 score from ``model_v8.onnx``; the clip's scores are
  the means over windows.
- P.808 features: mel spectrogram of the window minus its last 160 samples,
  ``n_fft = 321`` (periodic Hann), hop 160, 120 Slaney mel bands up to 8 kHz
  (``faster_whisper.FeatureExtractor.get_mel_filters``, a copy of
  ``librosa.filters.mel`` with fmax = 8 kHz), power spectrum, then
  ``power_to_db(ref=max, amin=1e-10, top_db=80)`` and ``(dB + 40) / 40``;
  900 frames x 120 bands.  Frames are centred with *reflect* padding, the
  librosa default before 0.10 (when DNSMOS was published); librosa 0.10
  switched to zero padding.  Only the first and last of the 900 frames
  differ between the two.
- The two ONNX sessions are built once per :class:`Dnsmos` (``saraikit.
  engines.ort.build_ort_session``, CPU only).  Results are deterministic: the
  same clip gives the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import get_window

from saraikit.data.audio import SAMPLE_RATE, Audio, read_audio
from saraikit.core.errors import DataError
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.models.catalog import model_path
from saraikit.core.stats import bootstrap_ci
from saraikit.core.store import Figure

__all__ = [
    "LABEL", "MIN_SECONDS", "SAMPLE_RATE", "Dnsmos", "dnsmos", "dnsmos_figures", "dnsmos_frame", "mel_features",
]

LABEL = "predicted MOS (DNSMOS)"
WINDOW_SECONDS = 9.01
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)  # 144160, the sig_bak_ovr input length
MIN_SECONDS = 1.0
SIG_BAK_OVR_MODEL = "dnsmos-sig-bak-ovr"
P808_MODEL = "dnsmos-p808"

# The polynomials of DNSMOS (non-personalised): raw network output -> MOS scale.
SIG_POLY = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
BAK_POLY = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
OVR_POLY = np.poly1d([-0.06766283, 1.11546468, 0.04602535])

# P.808 mel spectrogram parameters (speechmos DNSMOS.audio_melspec).
N_FFT = 321
HOP = 160
N_MELS = 120
TOP_DB = 80.0
AMIN = 1e-10

SCORE_KEYS = ("sig", "bak", "ovrl", "p808_mos")


def _mel_filters() -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor.get_mel_filters(SAMPLE_RATE, N_FFT, n_mels=N_MELS)


def mel_features(segment: np.ndarray, mel_filters: np.ndarray | None = None) -> np.ndarray:
    """DNSMOS P.808 input for one segment: (frames, 120) float32, ``(dB + 40) / 40``."""
    filters = _mel_filters() if mel_filters is None else mel_filters
    padded = np.pad(np.asarray(segment, dtype=np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * get_window("hann", N_FFT), axis=1)) ** 2
    mel = power @ filters.T  # (frames, bands)
    db = 10.0 * np.log10(np.maximum(AMIN, mel)) - 10.0 * np.log10(max(AMIN, float(mel.max())))
    db = np.maximum(db, db.max() - TOP_DB)
    return ((db + 40.0) / 40.0).astype(np.float32)


def _window_starts(n_samples: int) -> list[int]:
    n_windows = int(np.floor(n_samples / SAMPLE_RATE) - WINDOW_SECONDS) + 1
    starts = [i * SAMPLE_RATE for i in range(n_windows)]
    return [s for s in starts if s + WINDOW_SAMPLES <= n_samples]


def _samples_16k(audio) -> np.ndarray:
    if isinstance(audio, Audio):
        if audio.sample_rate != SAMPLE_RATE:
            raise DataError(
                f"{audio.path or 'audio'}: DNSMOS needs {SAMPLE_RATE} Hz, got {audio.sample_rate} Hz; "
                f"read it with read_audio(path, target_sr={SAMPLE_RATE})"
            )
        audio = audio.samples
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim != 1:
        raise DataError(f"DNSMOS needs mono (1-D) samples, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)) or np.max(np.abs(samples), initial=0.0) > 1.0:
        raise DataError("DNSMOS needs finite samples in [-1, 1]")
    return samples


class Dnsmos:
    """The two DNSMOS networks, loaded once; call it on 16 kHz clips."""

    def __init__(self, sig_bak_ovr_path: str | Path | None = None, p808_path: str | Path | None = None,
                 ort: OrtConfig | None = None):
        self.sig_bak_ovr_path = Path(sig_bak_ovr_path or model_path(SIG_BAK_OVR_MODEL))
        self.p808_path = Path(p808_path or model_path(P808_MODEL))
        self._sig_bak_ovr = build_ort_session(self.sig_bak_ovr_path, ort)
        self._p808 = build_ort_session(self.p808_path, ort)
        self._mel_filters = _mel_filters()

    def _score_window(self, segment: np.ndarray) -> tuple[float, float, float, float]:
        raw = self._sig_bak_ovr.run(None, {"input_1": segment[np.newaxis, :]})[0][0]
        features = mel_features(segment[:-HOP], self._mel_filters)[np.newaxis]
        p808 = float(self._p808.run(None, {"input_1": features})[0][0][0])
        return float(SIG_POLY(raw[0])), float(BAK_POLY(raw[1])), float(OVR_POLY(raw[2])), p808

    def __call__(self, audio) -> dict:
        """``{"sig", "bak", "ovrl", "p808_mos", "n_windows", "duration_s", "skipped", "label"}``.

        ``audio`` is an :class:`Audio` at 16 kHz or a 1-D float array at
        16 kHz.  ``skipped`` is None, or the reason the scores are NaN.
        """
        samples = _samples_16k(audio)
        duration = samples.size / SAMPLE_RATE
        result = {"duration_s": duration, "label": LABEL, "skipped": None}
        if duration < MIN_SECONDS:
            reason = f"clip of {duration:.2f} s is shorter than {MIN_SECONDS:g} s"
            return {**dict.fromkeys(SCORE_KEYS, math.nan), "n_windows": 0, **result, "skipped": reason}
        while samples.size < WINDOW_SAMPLES:
            samples = np.concatenate([samples, samples])
        scores = np.array([self._score_window(samples[s:s + WINDOW_SAMPLES]) for s in _window_starts(samples.size)])
        means = dict(zip(SCORE_KEYS, (float(v) for v in scores.mean(axis=0))))
        return {**means, "n_windows": len(scores), **result}


_default: Dnsmos | None = None


def dnsmos(audio) -> dict:
    """Predicted MOS (DNSMOS) of one 16 kHz clip with the provisioned models (see :class:`Dnsmos`)."""
    global _default
    if _default is None:
        _default = Dnsmos()
    return _default(audio)


def dnsmos_frame(paths, scorer: Dnsmos | None = None) -> pd.DataFrame:
    """Predicted MOS (DNSMOS) of audio files, one row each; files are resampled to 16 kHz.

    Unreadable files raise DataError; clips under 1 s are rows with NaN
    scores and a ``skipped`` reason.
    """
    scorer = scorer or Dnsmos()
    rows = []
    for path in paths:
        audio = read_audio(path, target_sr=SAMPLE_RATE)
        rows.append({"path": str(path), **scorer(audio)})
    return pd.DataFrame(rows)


def dnsmos_figures(frame: pd.DataFrame, confidence: float = 0.95, seed: int | None = 0) -> list[Figure]:
    """Mean predicted MOS over the scored clips of a :func:`dnsmos_frame`, one Figure per score.

    Provenance is "estimated" (a network's prediction of a listening test);
    ``extra`` holds the bootstrap CI over clips and the number skipped.
    """
    scored = frame[frame["skipped"].isna()]
    if scored.empty:
        raise DataError(f"no clip could be scored by DNSMOS ({len(frame)} skipped)")
    figures = []
    for key in SCORE_KEYS:
        interval = bootstrap_ci(scored[key].to_numpy(float), np.mean, confidence, seed=seed)
        extra = {"label": LABEL, "ci_low": interval.low, "ci_high": interval.high, "confidence": confidence,
                 "n_skipped": len(frame) - len(scored)}
        figures.append(Figure(f"dnsmos_{key}", interval.estimate, "predicted MOS (1-5)", len(scored), "estimated", extra))
    return figures
