"""Reading and checking audio files.

Decisions:

- Every clip becomes float32 mono in [-1, 1]: stereo is averaged, and values
  outside [-1, 1] (float WAVs, resampling overshoot) are clipped.
- Resampling uses ``scipy.signal.resample_poly`` (polyphase with an
  anti-aliasing filter); the output length is ``ceil(n * target_sr / sr)``.
- Levels are dBFS relative to a full-scale *peak* of 1.0, so a full-scale
  sine has an RMS of about -3 dBFS. Digital silence is ``-inf``.
- Headerless ``.raw`` files carry no format, so :func:`read_16k` reads them
  as 16 kHz 16-bit mono PCM (the only such files the project reads).
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

SILENCE_DBFS = -60.0
MIN_SECONDS = 0.1
# 16-bit PCM tops out at 32767/32768 on the positive side, so "full scale"
# must be a little below 1.0 to catch clipping on both sides.
FULL_SCALE = 0.999
MAX_CLIPPED_FRACTION = 0.001
SPEECH_SAMPLE_RATE = 16000  # what the speech models take; headerless .raw speech is stored at this rate


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
    if target_sr is not None and target_sr != sample_rate:
        divisor = math.gcd(target_sr, sample_rate)
        samples = resample_poly(samples, target_sr // divisor, sample_rate // divisor)
        sample_rate = target_sr
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    return Audio(samples=samples, sample_rate=int(sample_rate), path=path)


def read_16k(path: str | Path) -> np.ndarray:
    """float32 mono samples at 16 kHz (WAV/FLAC via :func:`read_audio`, headerless ``.raw`` as 16 kHz PCM16)."""
    path = Path(path)
    if path.suffix == ".raw":
        try:
            samples, _ = sf.read(path, format="RAW", samplerate=SPEECH_SAMPLE_RATE, channels=1, subtype="PCM_16",
                                 dtype="float32")
        except (sf.SoundFileError, RuntimeError) as error:
            raise DataError(f"{path}: not readable as 16 kHz 16-bit PCM ({error})") from None
        if samples.size == 0:
            raise DataError(f"{path}: empty audio (0 samples)")
        return samples
    return read_audio(path, target_sr=SPEECH_SAMPLE_RATE).samples


def duration_s(audio: Audio) -> float:
    return len(audio.samples) / audio.sample_rate


def _dbfs(level: float) -> float:
    return 20 * math.log10(level) if level > 0 else -math.inf


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
