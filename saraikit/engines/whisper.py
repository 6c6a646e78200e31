"""Speech to text: Whisper through faster-whisper (CTranslate2).

Decisions:

- faster-whisper's own VAD is off: the VAD is its own stage, so its cost is
  measured where it happens.
- Input is 16 kHz mono float32 (:func:`saraikit.data.audio.as_16k_samples`).
- Silent (peak below ``saraikit.data.audio.SILENCE_DBFS``) or empty audio
  skips the model and gives an empty :class:`Transcript` with ``reason``:
  Whisper is known to invent text for silence.
- :class:`Transcript` ``status`` says whether the text can be used: "ok",
  "empty" (``reason`` says why) or "looped" (a decoder loop, reported by
  :mod:`saraikit.engines.whisper_trim`; the text is kept for inspection).
  It was added after ``reason``, with a default, so older callers still work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from saraikit.core.errors import ConfigError
from saraikit.data.audio import SAMPLE_RATE, as_16k_samples, silence_reason
from saraikit.engines.ct2 import Ct2WhisperConfig, build_faster_whisper
from saraikit.engines.stage import Stage, warmup_noise


@dataclass
class TranscriptSegment:
    start_s: float
    end_s: float
    text: str


@dataclass
class Transcript:
    text: str
    language: str | None
    language_probability: float | None
    segments: list[TranscriptSegment]
    reason: str | None = None  # why text is empty, when it is (or why status is not "ok")
    status: str = "ok"  # "ok" | "empty" (no text; see reason) | "looped" (a decoder loop; text kept, not to be trusted)


class FasterWhisperSTT(Stage):
    """Whisper through faster-whisper (CTranslate2), VAD off: the VAD is its own stage."""

    kind = "stt"
    SETTINGS = ("language", "beam_size", "transcribe_options")

    def __init__(
        self,
        model_dir: str | Path,
        ct2_config: Ct2WhisperConfig | None = None,
        language: str | None = None,
        beam_size: int = 1,
        transcribe_options: dict | None = None,
        name: str | None = None,
    ):
        super().__init__(name or Path(model_dir).name)
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"FasterWhisperSTT.beam_size must be an int >= 1, got {beam_size!r}")
        options = dict(transcribe_options or {})
        fixed = {"language", "beam_size", "vad_filter"} & set(options)
        if fixed:
            raise ConfigError(f"FasterWhisperSTT.transcribe_options: {sorted(fixed)} are set by the stage itself")
        self.model_dir = Path(model_dir)
        self.ct2_config = ct2_config or Ct2WhisperConfig()
        self.language = language
        self.beam_size = beam_size
        self.transcribe_options = options
        self.model = None

    def _load(self) -> None:
        self.model = build_faster_whisper(self.model_dir, self.ct2_config)

    def _check_input(self, x):
        return as_16k_samples(x, f"stt {self.name!r}")

    def _produce(self, samples, mark, meta):
        meta["audio_s"] = len(samples) / SAMPLE_RATE
        reason = silence_reason(samples)
        if reason:
            meta["reason"] = reason
            return
        segments, info = self.model.transcribe(
            samples, language=self.language, beam_size=self.beam_size, vad_filter=False,
            **self.transcribe_options,
        )
        mark("prepared")  # features computed, language detected; decoding is lazy
        meta["language"] = info.language
        meta["language_probability"] = info.language_probability
        for segment in segments:
            yield TranscriptSegment(segment.start, segment.end, segment.text.strip())

    def _join(self, parts, meta):
        text = " ".join(part.text for part in parts if part.text)
        reason = meta.get("reason") or (None if text else "the model produced no text")
        return Transcript(text, meta.get("language"), meta.get("language_probability"), list(parts), reason,
                          "ok" if text else "empty")

    def warmup_input(self):
        return warmup_noise(1.0, -40)
