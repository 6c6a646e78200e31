"""Adding noise to speech at a chosen signal-to-noise ratio.

``mix_at_snr(clean, noise, snr_db, seed)`` returns a :class:`Mixture` that
holds the mixed signal *and* the two components that were summed, so the SNR
can be checked on what was actually mixed: ``measure_snr(m.clean, m.noise)``
equals ``snr_db`` (to float32 rounding, far inside 0.1 dB).

Decisions:

- Power is the mean square over the whole clip, pauses included (not the
  ITU-T P.56 active speech level).  A clip with long pauses is therefore
  noisier during speech than its nominal SNR says; the synthetic prompts and
  the read sentences used here have short pauses.
- Noise shorter than the speech is looped, noise longer is cropped; the start
  offset into the noise is drawn from ``seed``, so the same seed gives the
  same mixture and different seeds give different noise segments.
- If the mixture would peak above ``PEAK_LIMIT`` (0.98), speech and noise are
  both scaled down by the same factor, which keeps the SNR, and the factor is
  recorded in ``Mixture.output_gain``.  0.98 rather than 1.0 keeps the
  mixture below the 0.999 full-scale mark that ``saraikit.audio.check_audio``
  reports as clipping, and leaves room for 16-bit rounding.
- Signals are 1-D float arrays (or :class:`saraikit.audio.Audio`; when both
  sides are ``Audio`` their sample rates must match).  Computation is float64,
  outputs are float32.
- ``white_noise`` is Gaussian with RMS ``NOISE_RMS`` (0.1, -20 dBFS);
  ``babble`` sums ``n_speakers`` different speech clips, each scaled to the
  same RMS before summing (so no one voice dominates), then scales the sum to
  ``NOISE_RMS``.  The level of the noise itself does not matter for
  ``mix_at_snr``, which rescales it.  Pass clips *other* than the one you
  will mix into: babble made of the target speaker is a different test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from saraikit.data.audio import Audio
from saraikit.core.errors import ConfigError, DataError

__all__ = ["NOISE_RMS", "PEAK_LIMIT", "Mixture", "babble", "measure_snr", "mix_at_snr", "white_noise"]

PEAK_LIMIT = 0.98
NOISE_RMS = 0.1


@dataclass
class Mixture:
    """A noisy signal and the components it is the sum of (``mixed == clean + noise``)."""

    mixed: np.ndarray  # float32
    clean: np.ndarray  # the speech as it is in the mixture (after output_gain)
    noise: np.ndarray  # the noise as it is in the mixture (after noise_gain and output_gain)
    snr_db: float  # requested
    measured_snr_db: float  # measure_snr(clean, noise)
    noise_gain: float  # applied to the given noise to reach snr_db
    output_gain: float  # applied to both components to keep the peak <= PEAK_LIMIT (1.0 = none)
    noise_offset: int  # first sample of the noise used (before looping)

    @property
    def rescaled(self) -> bool:
        return self.output_gain < 1.0


def _signal(value, name: str) -> tuple[np.ndarray, int | None]:
    """``value`` as a 1-D float64 array, and its sample rate when it is an Audio."""
    sample_rate = value.sample_rate if isinstance(value, Audio) else None
    samples = value.samples if isinstance(value, Audio) else value
    try:
        array = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be an array of samples or an Audio: {error}") from None
    if array.ndim != 1:
        raise DataError(f"{name} must be mono (1-D), got shape {array.shape}")
    if array.size == 0:
        raise DataError(f"{name} is empty (0 samples)")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} contains NaN or infinite samples")
    return array, sample_rate


def _power(samples: np.ndarray) -> float:
    return float(np.mean(np.square(samples, dtype=np.float64)))


def _fit_length(noise: np.ndarray, length: int, offset: int) -> np.ndarray:
    """``length`` samples of ``noise`` from ``offset`` on, looping as needed."""
    return np.take(noise, np.arange(offset, offset + length), mode="wrap")


def measure_snr(clean, noise_component) -> float:
    """``10 * log10(P_clean / P_noise)`` in dB over the whole signals (same length)."""
    clean, _ = _signal(clean, "clean")
    noise, _ = _signal(noise_component, "noise_component")
    if clean.size != noise.size:
        raise DataError(f"clean has {clean.size} samples but noise_component has {noise.size}")
    clean_power, noise_power = _power(clean), _power(noise)
    if clean_power == 0 and noise_power == 0:
        raise DataError("both clean and noise_component are digital silence: the SNR is undefined")
    if noise_power == 0:
        return math.inf
    if clean_power == 0:
        return -math.inf
    return 10.0 * math.log10(clean_power / noise_power)


def mix_at_snr(clean, noise, snr_db: float, seed: int | None = 0) -> Mixture:
    """Speech plus noise at ``snr_db`` (see the module docstring for the rules)."""
    if not isinstance(snr_db, (int, float)) or isinstance(snr_db, bool) or not math.isfinite(snr_db):
        raise ConfigError(f"snr_db must be a finite number of dB, got {snr_db!r}")
    clean, clean_rate = _signal(clean, "clean")
    noise, noise_rate = _signal(noise, "noise")
    if clean_rate and noise_rate and clean_rate != noise_rate:
        raise DataError(f"clean is {clean_rate} Hz but noise is {noise_rate} Hz; resample one of them first")
    clean_power, noise_power = _power(clean), _power(noise)
    if clean_power == 0:
        raise DataError("clean is digital silence: no SNR can be set")
    if noise_power == 0:
        raise DataError("noise is digital silence: no SNR can be set")

    offset = int(np.random.default_rng(seed).integers(0, noise.size))
    noise = _fit_length(noise, clean.size, offset)
    noise_gain = math.sqrt(clean_power / (_power(noise) * 10.0 ** (snr_db / 10.0)))
    noise = noise * noise_gain

    peak = float(np.max(np.abs(clean + noise)))
    output_gain = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    clean_part = (clean * output_gain).astype(np.float32)
    noise_part = (noise * output_gain).astype(np.float32)
    mixed = (clean_part.astype(np.float64) + noise_part).astype(np.float32)
    return Mixture(
        mixed=mixed,
        clean=clean_part,
        noise=noise_part,
        snr_db=float(snr_db),
        measured_snr_db=measure_snr(clean_part, noise_part),
        noise_gain=noise_gain,
        output_gain=output_gain,
        noise_offset=offset,
    )


def _check_length(length: int, name: str = "length") -> int:
    if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1:
        raise ConfigError(f"{name} must be a positive number of samples, got {length!r}")
    return int(length)


def white_noise(n: int, seed: int | None = 0) -> np.ndarray:
    """``n`` samples of Gaussian white noise with RMS ``NOISE_RMS``, float32."""
    n = _check_length(n, "n")
    return (np.random.default_rng(seed).standard_normal(n) * NOISE_RMS).astype(np.float32)


def babble(clips: Sequence, n_speakers: int = 4, length: int = 16000, seed: int | None = 0) -> np.ndarray:
    """Several talkers at once: ``n_speakers`` different ``clips`` summed, ``length`` samples.

    Each chosen clip is scaled to unit RMS, looped or cropped to ``length``
    from a random offset, and added; the sum is scaled to ``NOISE_RMS``.
    All clips must share one sample rate (checked when they are ``Audio``).
    """
    length = _check_length(length)
    if not isinstance(n_speakers, (int, np.integer)) or isinstance(n_speakers, bool) or n_speakers < 1:
        raise ConfigError(f"n_speakers must be a positive integer, got {n_speakers!r}")
    clips = list(clips)
    if len(clips) < n_speakers:
        raise ConfigError(f"babble of {n_speakers} speakers needs at least {n_speakers} clips, got {len(clips)}")
    rates = {clip.sample_rate for clip in clips if isinstance(clip, Audio)}
    if len(rates) > 1:
        raise DataError(f"babble clips must share one sample rate, got {sorted(rates)} Hz")

    rng = np.random.default_rng(seed)
    total = np.zeros(length)
    for index in rng.choice(len(clips), size=n_speakers, replace=False):
        samples, _ = _signal(clips[index], f"clips[{index}]")
        power = _power(samples)
        if power == 0:
            raise DataError(f"clips[{index}] is digital silence and cannot be a babble talker")
        offset = int(rng.integers(0, samples.size))
        total += _fit_length(samples, length, offset) / math.sqrt(power)
    return (total * NOISE_RMS / math.sqrt(_power(total))).astype(np.float32)
