"""Voice activity detection: Silero VAD v6 run directly with ONNX Runtime.

Decisions:

- The window feeding replicates faster-whisper's ``vad.py`` for the same v6
  model (512 new samples + the previous window's last 64 as context, all
  windows in one call of up to 10000 rows, h/c carried between calls), so the
  probabilities equal faster-whisper's.
- The segment rules follow silero's ``get_speech_timestamps`` with silero's
  own defaults (threshold 0.5, negative threshold threshold-0.15, min speech
  250 ms, min silence 100 ms, pad 30 ms; faster-whisper's 2 s silence is for
  chunking long files, not for turn-taking), with one change: speech still
  open at the end of the clip ends where its trailing silence began, not at
  the clip's end, because ``end_of_speech`` is used to tell when the user
  stopped talking.
- Input is 16 kHz mono float32 (:func:`saraikit.data.audio.as_16k_samples`).
  Silent or empty audio gives no segments: the VAD stage is what decides
  whether there is speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.audio import SAMPLE_RATE, Audio, as_16k_samples
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.engines.stage import Stage, warmup_noise


def segments_from_probs(
    probs: np.ndarray,
    n_samples: int,
    window: int,
    sample_rate: int,
    threshold: float,
    neg_threshold: float,
    min_silence_ms: float,
    min_speech_ms: float,
    speech_pad_ms: float,
) -> list[tuple[float, float]]:
    """Speech segments (seconds) from per-window speech probabilities (silero's hysteresis rules)."""
    min_silence = sample_rate * min_silence_ms / 1000
    min_speech = sample_rate * min_speech_ms / 1000
    pad = int(sample_rate * speech_pad_ms / 1000)
    speeches: list[list[int]] = []
    start = silence_start = None
    for i, prob in enumerate(probs):
        position = i * window
        if start is None:
            if prob >= threshold:
                start = position
            continue
        if prob >= threshold:
            silence_start = None
        elif prob < neg_threshold:
            silence_start = position if silence_start is None else silence_start
            if position - silence_start >= min_silence:
                if silence_start - start > min_speech:
                    speeches.append([start, silence_start])
                start = silence_start = None
    if start is not None:
        end = silence_start if silence_start is not None else n_samples
        if end - start > min_speech:
            speeches.append([start, end])
    padded: list[list[int]] = []
    for begin, end in speeches:
        begin, end = max(0, begin - pad), min(n_samples, end + pad)
        if padded and begin <= padded[-1][1]:
            padded[-1][1] = end
        else:
            padded.append([begin, end])
    return [(begin / sample_rate, end / sample_rate) for begin, end in padded]


class SileroVAD(Stage):
    """Silero VAD v6 (faster-whisper's ONNX export) run directly with ONNX Runtime."""

    kind = "vad"
    SETTINGS = ("threshold", "neg_threshold", "min_silence_ms", "min_speech_ms", "speech_pad_ms")
    WINDOW = 512  # new samples per window at 16 kHz
    CONTEXT = 64  # samples of the previous window prepended to each window
    BATCH = 10000  # windows per session.run, as faster-whisper
    STATE_SHAPE = (1, 1, 128)

    def __init__(
        self,
        model_path: str | Path,
        ort_config: OrtConfig | None = None,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_silence_ms: float = 100,
        min_speech_ms: float = 250,
        speech_pad_ms: float = 30,
        name: str | None = None,
    ):
        super().__init__(name or Path(model_path).stem)
        if not 0 < threshold < 1:
            raise ConfigError(f"SileroVAD.threshold must be in (0, 1), got {threshold!r}")
        for option, value in (("min_silence_ms", min_silence_ms), ("min_speech_ms", min_speech_ms),
                              ("speech_pad_ms", speech_pad_ms)):
            if not value >= 0:
                raise ConfigError(f"SileroVAD.{option} must be >= 0 ms, got {value!r}")
        self.model_path = Path(model_path)
        self.ort_config = ort_config or OrtConfig()
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        self.min_silence_ms = min_silence_ms
        self.min_speech_ms = min_speech_ms
        self.speech_pad_ms = speech_pad_ms
        self.session = None

    def _load(self) -> None:
        session = build_ort_session(self.model_path, self.ort_config)
        inputs = {i.name: i.shape for i in session.get_inputs()}
        if set(inputs) != {"input", "h", "c"} or inputs["input"][-1] != self.WINDOW + self.CONTEXT:
            raise ModelError(
                f"{self.model_path}: expected faster-whisper's Silero VAD v6 (inputs input[seq_len, "
                f"{self.WINDOW + self.CONTEXT}], h[1,1,128], c[1,1,128]), got inputs {inputs}"
            )
        self.session = session

    def _check_input(self, x):
        return as_16k_samples(x, f"vad {self.name!r}")

    def speech_probs(self, samples: np.ndarray) -> np.ndarray:
        """One speech probability per 512-sample window (the last window zero-padded)."""
        samples = as_16k_samples(samples, f"vad {self.name!r}")
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        padded = np.pad(samples, (0, -len(samples) % self.WINDOW))
        windows = padded.reshape(-1, self.WINDOW)
        context = np.zeros((len(windows), self.CONTEXT), dtype=np.float32)
        context[1:] = windows[:-1, -self.CONTEXT:]
        rows = np.concatenate([context, windows], axis=1)
        h = np.zeros(self.STATE_SHAPE, dtype=np.float32)
        c = np.zeros(self.STATE_SHAPE, dtype=np.float32)
        outputs = []
        for i in range(0, len(rows), self.BATCH):
            probs, h, c = self.session.run(None, {"input": rows[i:i + self.BATCH], "h": h, "c": c})
            outputs.append(probs.reshape(-1))
        return np.concatenate(outputs)

    def _produce(self, samples, mark, meta):
        meta["audio_s"] = len(samples) / SAMPLE_RATE
        probs = self.speech_probs(samples)
        mark("probabilities")
        meta["n_windows"] = len(probs)
        meta["speech_probs"] = probs  # the pipeline's endpointing walks them (saraikit.engines.endpointing)
        yield segments_from_probs(
            probs, len(samples), self.WINDOW, SAMPLE_RATE, self.threshold, self.neg_threshold,
            self.min_silence_ms, self.min_speech_ms, self.speech_pad_ms,
        )

    def _join(self, parts, meta):
        return parts[0] if parts else []

    def speech_segments(self, audio: Audio | np.ndarray) -> list[tuple[float, float]]:
        """(start_s, end_s) of every speech segment in 16 kHz audio."""
        return self.run(audio).value

    def end_of_speech(self, audio: Audio | np.ndarray) -> float | None:
        """Seconds at which the last speech segment ends (padding included); None when there is no speech."""
        segments = self.speech_segments(audio)
        return segments[-1][1] if segments else None

    def warmup_input(self):
        return warmup_noise(1.0, -30)
