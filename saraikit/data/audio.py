"""Reading, resampling and checking audio, and the 16 kHz input the speech models take.

Decisions:

- Every clip becomes float32 mono in [-1, 1]: stereo is averaged, and values
  outside [-1, 1] (float WAVs, resampling overshoot) are clipped.
- One resampler, :func:`resample`: ``scipy.signal.resample_poly`` (polyphase
  with an anti-aliasing filter); the output length is ``ceil(n * target_sr / sr)``.
- Speech models here (Whisper, Silero VAD, DNSMOS) take 16 kHz mono float32:
  :data:`SAMPLE_RATE` is that rate, defined once. :func:`as_16k_samples`
  refuses an ``Audio`` at another rate with a DataError naming both rates, so
  resampling stays the caller's visible choice (:func:`ensure_16k`); a bare
  numpy array is taken to be 16 kHz.
- Levels are dBFS relative to a full-scale *peak* of 1.0, so a full-scale
  sine has an RMS of about -3 dBFS. Digital silence is ``-inf``.
- Headerless ``.raw`` files carry no format, so :func:`read_16k` reads them
  as 16 kHz 16-bit mono PCM (the only such files the project reads).
- :func:`silence_reason` calls audio speech-free only when that is certain
  (empty, or peak below ``SILENCE_DBFS``); any other audio goes to the
  models, and the VAD decides whether it holds speech.
- ``check_audio`` reports problems as short strings and never raises: callers
  decide whether a problem drops a clip (the datasets drop only silent ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from saraikit.core.errors import DataError

SAMPLE_RATE = 16000  # Hz, the input rate of the speech models
SILENCE_DBFS = -60.0
MIN_SECONDS = 0.1
# 16-bit PCM tops out at 32767/32768 on the positive side, so "full scale"
# must be a little below 1.0 to catch clipping on both sides.
FULL_SCALE = 0.999
MAX_CLIPPED_FRACTION = 0.001


@dataclass
class Audio:
    samples: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int
    path: Path | None = None


def read_audio(path: str | Path, target_sr: int | None = None) -> Audio:
    """Read an audio file as float32 mono, resampled to ``target_sr`` if given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such audio file")
    if target_sr is not None and target_sr <= 0:
        raise DataError(f"{path}: target sample rate must be positive, got {target_sr}")
    try:
        frames, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.SoundFileError as error:
        raise DataError(f"{path}: not a readable audio file ({error})") from None
    if frames.shape[0] == 0:
        raise DataError(f"{path}: empty audio (0 samples)")

    samples = frames.mean(axis=1)
    if target_sr is not None:
        samples, sample_rate = resample(samples, sample_rate, target_sr), target_sr
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    return Audio(samples=samples, sample_rate=int(sample_rate), path=path)


def read_16k(path: str | Path) -> np.ndarray:
    """float32 mono samples at 16 kHz (WAV/FLAC via :func:`read_audio`, headerless ``.raw`` as 16 kHz PCM16)."""
    path = Path(path)
    if path.suffix == ".raw":
        try:
            samples, _ = sf.read(path, format="RAW", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16",
                                 dtype="float32")
        except (sf.SoundFileError, RuntimeError) as error:
            raise DataError(f"{path}: not readable as 16 kHz 16-bit PCM ({error})") from None
        if samples.size == 0:
            raise DataError(f"{path}: empty audio (0 samples)")
        return samples
    return read_audio(path, target_sr=SAMPLE_RATE).samples


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``samples`` at ``to_rate`` (polyphase resampling), float32 clipped to [-1, 1]."""
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    divisor = math.gcd(to_rate, from_rate)
    resampled = resample_poly(samples, to_rate // divisor, from_rate // divisor)
    return np.clip(resampled, -1.0, 1.0).astype(np.float32)


def ensure_16k(audio: Audio) -> np.ndarray:
    """The samples of ``audio`` at 16 kHz, float32 mono."""
    return resample(audio.samples, audio.sample_rate, SAMPLE_RATE)


def as_16k_samples(x: Audio | np.ndarray, where: str) -> np.ndarray:
    """1-D float32 samples from an Audio at 16 kHz or a float array (taken to be 16 kHz)."""
    if isinstance(x, Audio):
        if x.sample_rate != SAMPLE_RATE:
            source = f" ({x.path})" if x.path else ""
            raise DataError(
                f"{where}: expected {SAMPLE_RATE} Hz audio, got {x.sample_rate} Hz{source}; "
                "resample with saraikit.data.audio.ensure_16k(audio)"
            )
        x = x.samples
    if not isinstance(x, np.ndarray):
        raise DataError(f"{where}: expected an Audio or a numpy array of samples, got {type(x).__name__}")
    if x.ndim != 1:
        raise DataError(f"{where}: expected mono 1-D samples, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where}: expected float samples in [-1, 1], got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def duration_s(audio: Audio) -> float:
    return len(audio.samples) / audio.sample_rate


def _dbfs(level: float) -> float:
    return 20 * math.log10(level) if level > 0 else -math.inf


def silence_reason(samples: np.ndarray) -> str | None:
    """Why ``samples`` hold no speech for sure (empty or digitally silent), or None."""
    if samples.size == 0:
        return "empty audio (0 samples)"
    peak = _dbfs(float(np.max(np.abs(samples))))
    if peak < SILENCE_DBFS:
        return f"silent audio (peak {peak:.1f} dBFS < {SILENCE_DBFS:g} dBFS)"
    return None


def rms_dbfs(audio: Audio) -> float:
    samples = audio.samples.astype(np.float64)
    return _dbfs(float(np.sqrt(np.mean(samples**2)))) if samples.size else -math.inf


def peak_dbfs(audio: Audio) -> float:
    return _dbfs(float(np.max(np.abs(audio.samples)))) if audio.samples.size else -math.inf


def check_audio(
    audio: Audio,
    min_seconds: float = MIN_SECONDS,
    silence_dbfs: float = SILENCE_DBFS,
) -> list[str]:
    """Problems found in ``audio`` as readable strings; empty when it looks usable."""
    problems = []
    seconds = duration_s(audio)
    if seconds < min_seconds:
        problems.append(f"too short ({seconds:.2f} s < {min_seconds:g} s)")
    peak = peak_dbfs(audio)
    if peak < silence_dbfs:
        problems.append(f"silent (peak {peak:.1f} dBFS)")
    elif audio.samples.size:
        clipped = float(np.mean(np.abs(audio.samples) >= FULL_SCALE))
        if clipped > MAX_CLIPPED_FRACTION:
            problems.append(f"clipped ({clipped:.1%} of samples at full scale)")
    return problems
