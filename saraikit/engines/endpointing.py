"""Where a live VAD would see the user stop talking, and when early (speculative) STT would start.

A live assistant hears speech as it arrives. When the VAD's speech probability
drops below its negative threshold, trailing silence *may* have begun; the
end of the turn is declared only after ``min_silence_ms`` of it (the endpoint
wait). Early STT starts transcribing at the first sign of silence (after
``speculate_after_ms``), while the endpoint wait still runs:

- if the silence lasts, the endpoint is confirmed and the transcript is
  already there (or nearly): the endpoint wait and STT overlap;
- if speech resumes first, the speculative transcript is thrown away: that
  work was wasted (it ran while the user was still talking).

Decisions:

- The walk over the per-window probabilities follows the same hysteresis as
  :func:`saraikit.engines.vad.segments_from_probs` (speech starts at
  ``threshold``, silence begins below ``neg_threshold``), so the final onset is
  the unpadded end of the VAD's last segment.
- The clip is one turn: every onset before the final one is a pause after
  which speech resumed within the clip, so its speculative transcript is
  discarded (a pause longer than ``min_silence_ms`` inside a clip is treated
  the same way: the offline clip is the turn).
- A clip that ends while speech is still on has its final onset at the end of
  the clip (no trailing silence was heard).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SilenceOnset:
    """A point where the VAD saw silence begin after speech."""

    at_s: float  # audio time at which the silence began
    final: bool  # True for the end of the turn; False when speech resumed afterwards
    lasted_ms: float  # how long the silence lasted (to the clip's end for the final one)


def silence_onsets(probs: np.ndarray, n_samples: int, window: int, sample_rate: int, threshold: float,
                   neg_threshold: float, speculate_after_ms: float = 0.0) -> list[SilenceOnset]:
    """Every onset of silence that lasted at least ``speculate_after_ms``; the last one is the final onset.

    Returns an empty list when the VAD never heard speech.
    """
    onsets: list[SilenceOnset] = []
    in_speech, silence_start = False, None
    for i, prob in enumerate(probs):
        position = i * window
        if not in_speech:
            in_speech = prob >= threshold
            continue
        if prob >= threshold and silence_start is not None:
            lasted = (position - silence_start) * 1000 / sample_rate
            if lasted >= speculate_after_ms:
                onsets.append(SilenceOnset(silence_start / sample_rate, False, lasted))
            silence_start = None
        elif prob < neg_threshold and silence_start is None:
            silence_start = position
    if not in_speech:
        return []
    end = silence_start if silence_start is not None else n_samples
    lasted = (n_samples - end) * 1000 / sample_rate if silence_start is not None else 0.0
    onsets.append(SilenceOnset(min(end, n_samples) / sample_rate, True, max(lasted, 0.0)))
    return onsets


def early_stt_saving_ms(endpoint_ms: float, stt_ms: float, speculate_after_ms: float) -> float:
    """Time early STT saves on the final onset: the part of STT that overlaps the endpoint wait.

    STT starts ``speculate_after_ms`` after the onset and the endpoint is
    confirmed ``endpoint_ms`` after it; the LLM may start only when both are
    done, so the saving is ``min(max(endpoint - after, 0), stt)``.
    """
    return float(min(max(endpoint_ms - speculate_after_ms, 0.0), stt_ms))
