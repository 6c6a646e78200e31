"""Speech to text whose cost follows the utterance: Whisper's ONNX encoder on a window trimmed to the audio.

Whisper's encoder always sees 30 s (3000 mel frames); a 2 s command is 93%
padding, and the encoder's cost is paid on all of it. whisper.cpp's
``audio_ctx`` runs the encoder on fewer frames; this stage does the same with
the ONNX encoder of :mod:`saraikit.engines.whisper_export` (which slices its
position encodings to the frames it gets) and decodes the shorter encoder
output with CTranslate2's ``Whisper.generate``
(:class:`saraikit.engines.whisper_onnx.OnnxEncoderWhisper` holds both).

Settings (stack ``settings`` keys; defaults in brackets)
-------------------------------------------------------
- ``encoder`` ["fp32"]: "fp32", "int8" (= ``dynamic-s8``), a dynamic recipe
  name, or a path to an .onnx encoder (:mod:`saraikit.engines.whisper_encoders`
  makes and caches the files under the models folder).
- ``margin_frames`` [128]: 10 ms frames of padding kept after the audio.
- ``min_window_frames`` [1000]: the window is at least this long (10 s).
- ``window_frames`` ["trim"]: "trim", or "full" for the 30 s reference.
- ``max_tokens_per_s`` [8.0]: cap on decoded tokens per second of audio (at
  least :data:`MIN_TOKEN_CAP`); None = only the decoder's 224.
- ``loop_fallback`` [True]: a decode that loops is redone on the full window.
- ``language`` [None = detect]: the stack's ``language`` fills it.
- plus OrtConfig keys (the encoder session) and Ct2WhisperConfig keys (the
  decoder: ``compute_type``, ``cpu_threads``).

Decisions
---------
- Window = max(audio frames + margin, min_window), rounded up to even (the
  encoder's stride-2 conv) and at most 3000; one frame count is never used:
  2 x n_mels (160), because CTranslate2 takes a [batch, n_mels, n_mels]
  array for *features* and would run its own encoder on our output
  (observed: whisper-base then decodes "...").
- The frames past the audio are zeros in log-mel space, as faster-whisper
  pads; so a window of 3000 frames is exactly the full-window input and
  gives the same encoder output and text.
- Why the defaults: probed on the reference machine (busy, 2 cores) with
  whisper-base (decoder int8) on 10 English and 37 short Spanish clips:
  +128 frames alone changed the words of 24 of 37 Spanish clips and looped
  on some ("Conte la semia. Conte la semia. ..."); a 10 s minimum window
  kept 21 of 37 Spanish and 9 of 10 English clips word-for-word equal to
  the full window, with no loop but one 0.8 s clip ("3, 2, 3, 3, 3, ..."),
  which the token cap stops early and the fallback repairs. A 5 s minimum
  kept 20/37 and 6/10; 20 s kept 27/37 and 10/10 at half the speed-up. On
  9 Spanish clips of 8-28 s the margin (128, 300 or 500 frames) changed
  nothing. The remaining differences are single words, mostly on 8 kHz
  telephone prompts the full window gets wrong too: normalized WER against
  the references is no worse (see "Measured").
- Decoding: greedy (beam 1), no timestamps, no temperature fallback, prompt
  ``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>`` as in
  ``OnnxEncoderWhisper``; ``language=None`` detects it on the (trimmed)
  encoder output of the first window, timed as its own event ``language``.
- Token cap: CTranslate2's Whisper ``generate`` stops after
  ``min(max_length // 2, max_length - len(prompt) + 1)`` tokens (measured on
  ctranslate2 4.x; the other half is Whisper's prompt context), so a cap of
  ``n`` tokens is ``max_length = 2 n``.
- Loops (:mod:`saraikit.engines.whisper_loops`): repeated token units,
  character runs, or a decode stopped by the cap. With ``loop_fallback``
  the window is decoded again on the full 3000 frames (``meta["fell_back"]``);
  if that loops too, or there is no fallback, the Transcript's ``status`` is
  "looped" with the reason: the text is kept (so it can be inspected), never
  passed off as fine.
- Audio longer than 30 s is cut into 30 s windows (all but the last are full
  anyway), texts joined, as ``OnnxEncoderWhisper`` does.
- Silent or empty audio skips the model (``silence_reason``), as
  :class:`saraikit.engines.whisper.FasterWhisperSTT` does.
- Events: ``start``, ``prepared`` (features), ``encoded`` (per encoder run,
  fallback included), ``language`` (when detected), ``first_output``, ``end``.
  ``meta``: ``audio_s``, ``window_frames`` (per 30 s window, the window the
  kept text came from), ``encoded_frames`` (all frames encoded, fallbacks
  included), ``tokens``, ``looped``, ``fell_back``, ``language``,
  ``language_probability``, ``status``, ``reason``.

Measured (not in tests; reference machine, 2 cores shared with 3 other
jobs, so timings are noisy): encode + decode time (events ``prepared`` to
``end``, language given), median of 3 interleaved runs per clip, all in one
process (no between-process spread: a first look, not a verdict); n = 10
English clips (LibriVox + cards, 1.1-7.1 s) and 10 Spanish Asterisk clips
(1.1-7.8 s); decoder float32 (CTranslate2's default for whisper-base), 2
threads each; WER normalized (``saraikit.data.textnorm``)::

    row            median ms   speed-up vs full (95% CI)   WER    same words as full
    en full             1623   1                           4.3%   10/10
    en trim fp32         628   2.62 (2.42-2.99)            3.3%    8/10
    en trim int8         497   3.28 (3.08-3.74)            4.3%    8/10
    es full             1322   1                          17.9%   10/10
    es trim fp32         532   2.58 (2.05-2.70)           17.9%    6/10
    es trim int8         431   3.38 (2.49-3.69)           14.9%    6/10

With the decoder at ``compute_type: int8`` (same clips and method, run
while a test suite of ours shared the cores, so absolute times are higher):
speed-up 2.53 (2.34-2.97) en / 2.89 (2.42-3.21) es for the defaults and
3.63 (3.23-3.84) / 3.83 (3.15-4.67) with ``encoder: int8``; WER 3.3% / 19.4%
against 4.3% / 19.4% for the full window; same words 9/10 en, 4/10 es.

(speed-up: median over clips of full / trimmed per clip, bootstrap CI over
clips; "trim" = the defaults, "int8" = ``encoder: int8``.) No run fell back
or looped on these 20 clips; the differing words were e.g. "10 of cloves"
(full) vs "10 of clubs" (trim), "Actualmente, aye" vs "Actualmente hay".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saraikit.core.config import check_bool, check_int
from saraikit.core.errors import ConfigError
from saraikit.data.audio import SAMPLE_RATE, as_16k_samples, silence_reason
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.ort import OrtConfig
from saraikit.engines.stage import Stage, warmup_noise
from saraikit.engines.whisper import Transcript, TranscriptSegment
from saraikit.engines.whisper_encoders import check_encoder_choice, check_encoder_file, encoder_file, is_path
from saraikit.engines.whisper_loops import loop_reason
from saraikit.engines.whisper_onnx import MAX_DECODE_LENGTH, WINDOW_FRAMES, OnnxEncoderWhisper, content_frames

FRAMES_PER_S = 100  # 10 ms hops
MIN_TOKEN_CAP = 16  # a short clip still gets this many tokens ("tres, dos, uno..." is 6)
WINDOW_MODES = ("trim", "full")


@dataclass(frozen=True)
class WindowPlan:
    """How long the encoder window is for a given number of audio frames."""

    margin_frames: int = 128
    min_window_frames: int = 1000
    full: bool = False
    n_mels: int = 80

    def frames(self, content: int) -> int:
        if self.full:
            return WINDOW_FRAMES
        frames = max(content + self.margin_frames, self.min_window_frames, 2)
        frames = min(WINDOW_FRAMES, frames + frames % 2)
        if frames == 2 * self.n_mels:  # CTranslate2 would take [1, n_mels, n_mels] for features
            frames += 2
        return frames


def token_cap(audio_s: float, max_tokens_per_s: float | None) -> int:
    """Most tokens a window of ``audio_s`` seconds may decode."""
    limit = MAX_DECODE_LENGTH // 2
    if max_tokens_per_s is None:
        return limit
    return min(limit, max(MIN_TOKEN_CAP, math.ceil(max_tokens_per_s * audio_s)))


def _checked_rate(value, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{where}.max_tokens_per_s: expected a number > 0 or None, got {value!r}")
    return float(value)


def _checked_language_code(language, where: str) -> str | None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if language is not None and language not in _LANGUAGE_CODES:
        raise ConfigError(f"{where}.language: unknown Whisper language code {language!r}")
    return language


@dataclass
class _Decoded:
    text: str
    tokens: list[int]
    frames: int
    loop: str | None


class TrimmedWhisperSTT(Stage):
    """Whisper (ONNX encoder on a trimmed window + CTranslate2 decoder); see the module docstring."""

    kind = "stt"
    SETTINGS = ("language", "encoder", "margin_frames", "min_window_frames", "window_frames", "max_tokens_per_s",
                "loop_fallback")

    def __init__(self, model_dir: str | Path, ort_config: OrtConfig | None = None,
                 ct2_config: Ct2WhisperConfig | None = None, language: str | None = None, encoder: str = "fp32",
                 margin_frames: int = 128, min_window_frames: int = 1000, window_frames: str = "trim",
                 max_tokens_per_s: float | None = 8.0, loop_fallback: bool = True, name: str | None = None):
        super().__init__(name or Path(model_dir).name)
        where = f"stt {self.name!r} (whisper-onnx)"
        check_int(where, "margin_frames", margin_frames, 0)
        check_int(where, "min_window_frames", min_window_frames, 0, WINDOW_FRAMES)
        check_bool(where, "loop_fallback", loop_fallback)
        if window_frames not in WINDOW_MODES:
            raise ConfigError(f"{where}.window_frames: expected one of {WINDOW_MODES}, got {window_frames!r}")
        self.model_dir = Path(model_dir)
        self.encoder = check_encoder_choice(encoder, where)
        if is_path(self.encoder):
            check_encoder_file(self.encoder, self.model_dir)  # a wrong file fails now, not at load
        self.language = _checked_language_code(language, where)
        self.plan = WindowPlan(margin_frames, min_window_frames, window_frames == "full")
        self.max_tokens_per_s = _checked_rate(max_tokens_per_s, where)
        self.loop_fallback = loop_fallback
        self.ort_config = ort_config or OrtConfig()
        self.ct2_config = ct2_config or Ct2WhisperConfig()
        self.backend: OnnxEncoderWhisper | None = None
        self.encoder_path: Path | None = None

    def _load(self) -> None:
        self.encoder_path = encoder_file(self.encoder, self.model_dir)
        self.backend = OnnxEncoderWhisper(self.model_dir, self.encoder_path, self.ort_config, self.ct2_config)
        self.language = self.backend.checked_language(self.language)
        self.plan = WindowPlan(self.plan.margin_frames, self.plan.min_window_frames, self.plan.full,
                               self.backend.n_mels)

    def _check_input(self, x):
        return as_16k_samples(x, f"stt {self.name!r}")

    # -- one window -------------------------------------------------------

    def _encode(self, chunk: np.ndarray, frames: int, mark, meta: dict):
        window = np.zeros((1, chunk.shape[0], frames), dtype=np.float32)
        window[0, :, :chunk.shape[1]] = chunk
        encoded = self.backend.encode_window(window)
        meta["encoded_frames"] += frames
        mark("encoded")
        return encoded

    def _detect(self, encoder_output, mark, meta: dict) -> str:
        token, probability = self.backend.whisper.detect_language(encoder_output)[0][0]
        meta["language"], meta["language_probability"] = token[2:-2], probability  # "<|es|>" -> "es"
        mark("language")
        return meta["language"]

    def _decode(self, chunk: np.ndarray, frames: int, mark, meta: dict) -> _Decoded:
        import ctranslate2

        encoder_output = ctranslate2.StorageView.from_array(self._encode(chunk, frames, mark, meta))
        language = meta.get("language") or self._detect(encoder_output, mark, meta)
        tokenizer = self.backend.tokenizer(language)
        prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
        cap = token_cap(chunk.shape[1] / FRAMES_PER_S, self.max_tokens_per_s)
        result = self.backend.whisper.generate(encoder_output, [prompt], beam_size=1, max_length=2 * cap)[0]
        tokens = list(result.sequences_ids[0])
        text = tokenizer.decode(tokens).strip()
        return _Decoded(text, tokens, frames, loop_reason(tokens, text, len(tokens) >= cap, tokenizer.decode))

    def _window(self, chunk: np.ndarray, mark, meta: dict) -> _Decoded:
        decoded = self._decode(chunk, self.plan.frames(chunk.shape[1]), mark, meta)
        if decoded.loop and self.loop_fallback and decoded.frames < WINDOW_FRAMES:
            meta["fell_back"] = True
            meta.setdefault("fallback_reasons", []).append(decoded.loop)
            decoded = self._decode(chunk, WINDOW_FRAMES, mark, meta)
        return decoded

    # -- the stage --------------------------------------------------------

    def _produce(self, samples, mark, meta):
        meta.update(audio_s=len(samples) / SAMPLE_RATE, window_frames=[], encoded_frames=0, tokens=0,
                    looped=False, fell_back=False, language=self.language, language_probability=None)
        reason = silence_reason(samples)
        if reason:
            meta["reason"] = reason
            return
        features = content_frames(samples, self.backend.n_mels)
        mark("prepared")
        for offset in range(0, features.shape[1], WINDOW_FRAMES):
            chunk = features[:, offset:offset + WINDOW_FRAMES]
            decoded = self._window(chunk, mark, meta)
            meta["window_frames"].append(decoded.frames)
            meta["tokens"] += len(decoded.tokens)
            if decoded.loop:
                meta["looped"] = True
                meta.setdefault("loop_reasons", []).append(decoded.loop)
            yield TranscriptSegment(offset / FRAMES_PER_S, (offset + chunk.shape[1]) / FRAMES_PER_S, decoded.text)

    def _join(self, parts, meta):
        text = " ".join(part.text for part in parts if part.text)
        if meta.get("looped"):
            where = "even on the full window" if meta.get("fell_back") else "with no fallback"
            meta["status"] = "looped"
            meta["reason"] = f"{'; '.join(meta['loop_reasons'])} ({where})"
        else:
            meta["status"] = "ok" if text else "empty"
            meta["reason"] = meta.get("reason") or (None if text else "the model produced no text")
        return Transcript(text, meta.get("language"), meta.get("language_probability"), list(parts), meta["reason"],
                          meta["status"])

    def warmup_input(self):
        return warmup_noise(1.0, -40)
