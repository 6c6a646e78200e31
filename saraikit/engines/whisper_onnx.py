"""Whisper STT with its encoder in ONNX Runtime and CTranslate2's decoder.

The encoder file comes from :mod:`saraikit.engines.whisper_export` (or is an
INT8 variant of it); this module computes the features, runs that encoder,
hands its output to CTranslate2's decoder, and compares the encoder with
CTranslate2's own.

Decisions
---------
- Whisper was trained on 3000 frames (30 s), which is what ``transcribe``
  feeds, as faster-whisper does. ``encode_window`` runs any even number of
  frames up to 3000, for :mod:`saraikit.engines.whisper_trim` (a window
  trimmed to the utterance).
- Features follow faster-whisper exactly: ``FeatureExtractor`` (pure numpy)
  on the audio, the last frame dropped, then zero-padded (in log-mel space) to
  3000 frames per 30 s window (``faster_whisper.audio.pad_or_trim``). Audio
  longer than 30 s is cut into consecutive 30 s windows whose texts are
  joined; there is no timestamp-based seeking, so a word split by a window
  edge can be lost. Voice-assistant turns are short.
- The decoder is CTranslate2's own ``Whisper.generate``, which treats a
  [batch, 1500, d_model] float StorageView as encoder output. The prompt is
  ``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>``
  (English-only models: ``<|startoftranscript|><|notimestamps|>``); with
  ``language=None`` a multilingual model detects the language on the first
  window with ``Whisper.detect_language`` (as faster-whisper does). Sampling
  options are faster-whisper's defaults at temperature 0 (no temperature
  fallback), so the same audio gives the same text as
  ``WhisperModel.transcribe(..., without_timestamps=True)``.
- Any encoder file with the input ``mel`` and the output ``encoder_output``
  works (the INT8 variant is just another path).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.data.audio import SAMPLE_RATE
from saraikit.engines.ct2 import build_ct2_whisper
from saraikit.engines.ort import build_ort_session
from saraikit.engines.whisper_export import INPUT_NAME, OUTPUT_NAME, encoder_spec

WINDOW_FRAMES = 3000  # 30 s of 10 ms hops: Whisper's fixed input length
MAX_DECODE_LENGTH = 448  # the decoder's position-encoding rows


# ---------------------------------------------------------------------------
# Features and numerical comparison
# ---------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _feature_extractor(n_mels: int):
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=n_mels)


def _checked_samples(audio) -> np.ndarray:
    """A 1-D finite float32 array of 16 kHz samples, from an array or a ``saraikit.data.audio.Audio``."""
    rate = getattr(audio, "sample_rate", SAMPLE_RATE)
    samples = getattr(audio, "samples", audio)
    if rate != SAMPLE_RATE:
        raise DataError(f"Whisper needs {SAMPLE_RATE} Hz audio, got {rate} Hz; read it with target_sr={SAMPLE_RATE}")
    samples = np.asarray(samples)
    if samples.ndim != 1 or samples.size == 0:
        raise DataError(f"expected non-empty mono audio (a 1-D array of samples), got shape {samples.shape}")
    if not np.issubdtype(samples.dtype, np.floating) or not np.all(np.isfinite(samples)):
        raise DataError(f"expected finite float audio samples in [-1, 1], got dtype {samples.dtype} "
                        "or NaN/inf values")
    return samples.astype(np.float32, copy=False)


def content_frames(audio, n_mels: int = 80) -> np.ndarray:
    """Log-mel features [n_mels, frames] of the audio itself: faster-whisper's frames, the last one dropped, unpadded."""
    return _feature_extractor(n_mels)(_checked_samples(audio))[:, :-1]


def feature_frames(audio, n_mels: int = 80) -> np.ndarray:
    """Log-mel features [n_mels, k * 3000] of 16 kHz audio, zero-padded to whole 30 s windows (faster-whisper's way)."""
    features = content_frames(audio, n_mels)
    windows = max(1, math.ceil(features.shape[1] / WINDOW_FRAMES))
    padded = np.zeros((n_mels, windows * WINDOW_FRAMES), dtype=np.float32)
    padded[:, :features.shape[1]] = features
    return padded


def _as_batch(features: np.ndarray, n_mels: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if features.ndim == 2:
        features = features[None]
    if features.ndim != 3 or features.shape[1:] != (n_mels, WINDOW_FRAMES):
        raise DataError(f"Whisper encoder features: expected shape [batch, {n_mels}, {WINDOW_FRAMES}] "
                        f"(or [{n_mels}, {WINDOW_FRAMES}]), got {list(features.shape)}")
    return np.ascontiguousarray(features)


def compare_with_ct2(ct2_dir: str | Path, onnx_path: str | Path, features: np.ndarray,
                     ort_config=None) -> dict:
    """The ONNX encoder's output against CTranslate2's own FP32 encoder on the same features.

    Returns ``cosine`` (flattened), ``max_abs`` (largest absolute difference),
    ``snr_db`` (10 log10 of reference energy over error energy) and
    ``reference_max_abs`` (the scale ``max_abs`` is relative to).
    """
    import ctranslate2

    spec = encoder_spec(ct2_dir)
    batch = _as_batch(features, spec.n_mels)
    whisper = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    reference = np.array(whisper.encode(ctranslate2.StorageView.from_array(batch), to_cpu=True))
    session = build_ort_session(onnx_path, ort_config)
    candidate = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    if candidate.shape != reference.shape:
        raise ModelError(f"{onnx_path}: output shape {list(candidate.shape)} differs from CTranslate2's "
                         f"{list(reference.shape)}")
    return agreement(reference, candidate)


def agreement(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """cosine, max_abs, snr_db and reference_max_abs of ``candidate`` against ``reference``."""
    ref = reference.astype(np.float64).ravel()
    cand = candidate.astype(np.float64).ravel()
    error = cand - ref
    error_energy = float(error @ error)
    return {
        "cosine": float(ref @ cand / (np.linalg.norm(ref) * np.linalg.norm(cand))),
        "max_abs": float(np.max(np.abs(error))),
        "snr_db": float(10 * np.log10(float(ref @ ref) / error_energy)) if error_energy > 0 else math.inf,
        "reference_max_abs": float(np.max(np.abs(ref))),
    }


# ---------------------------------------------------------------------------
# The STT backend: ONNX encoder + CTranslate2 decoder
# ---------------------------------------------------------------------------


@dataclass
class TranscriptResult:
    """One transcription; times are summed over the 30 s windows."""

    text: str
    language: str
    language_probability: float | None  # detection's probability; None when given or English-only
    features_ms: float
    encoder_ms: float
    decoder_ms: float  # language detection + generate
    windows: int
    tokens: list[int]


class OnnxEncoderWhisper:
    """Whisper with its encoder in ONNX Runtime and CTranslate2's decoder.

    ``onnx_path`` is any encoder with input ``mel`` [batch, n_mels, 3000] and
    output ``encoder_output`` [batch, 1500, d_model] (FP32 or INT8 variants).
    """

    def __init__(self, ct2_dir: str | Path, onnx_path: str | Path, ort_config=None, ct2_config=None) -> None:
        import tokenizers

        self.ct2_dir, self.onnx_path = Path(ct2_dir), Path(onnx_path)
        self.spec = encoder_spec(self.ct2_dir)  # checks the folder holds a Whisper model.bin
        tokenizer_file = self.ct2_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelError(f"{self.ct2_dir}: no tokenizer.json (needed to decode Whisper tokens offline)")
        self.n_mels = self.spec.n_mels
        self.session = build_ort_session(self.onnx_path, ort_config)
        self._check_encoder_io()
        self.whisper = build_ct2_whisper(self.ct2_dir, ct2_config)
        self.multilingual = self.whisper.is_multilingual
        self._tokenizers = tokenizers.Tokenizer.from_file(str(tokenizer_file))

    def _check_encoder_io(self) -> None:
        """The ONNX file must take ``mel`` [batch, n_mels, frames] and give ``encoder_output`` [.., .., d_model]."""
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelError(f"{self.onnx_path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}; "
                             f"has inputs {sorted(inputs)} and outputs {sorted(outputs)}")
        mel, out = inputs[INPUT_NAME], outputs[OUTPUT_NAME]
        if len(mel) != 3 or (isinstance(mel[1], int) and mel[1] != self.n_mels):
            raise ModelError(f"{self.onnx_path}: input {INPUT_NAME!r} has shape {mel}; "
                             f"{self.ct2_dir.name} needs [batch, {self.n_mels}, frames]")
        if len(out) != 3 or (isinstance(out[2], int) and out[2] != self.spec.d_model):
            raise ModelError(f"{self.onnx_path}: output {OUTPUT_NAME!r} has shape {out}; the decoder of "
                             f"{self.ct2_dir.name} needs [batch, time, {self.spec.d_model}]")

    def encode(self, features: np.ndarray) -> np.ndarray:
        """Encoder output [batch, 1500, d_model] of features [batch, n_mels, 3000] (or one [n_mels, 3000])."""
        batch = _as_batch(features, self.n_mels)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def encode_window(self, features: np.ndarray) -> np.ndarray:
        """Encoder output [batch, frames / 2, d_model] of a window [batch, n_mels, frames] of any even length up
        to 3000 (a window trimmed to the utterance; :mod:`saraikit.engines.whisper_trim`)."""
        batch = np.ascontiguousarray(features, dtype=np.float32)
        frames = batch.shape[-1] if batch.ndim == 3 else None
        if batch.ndim != 3 or batch.shape[1] != self.n_mels or not frames or frames % 2 or frames > WINDOW_FRAMES:
            raise DataError(f"Whisper encoder window: expected shape [batch, {self.n_mels}, frames] with frames even "
                            f"and 2..{WINDOW_FRAMES}, got {list(batch.shape)}")
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]

    def checked_language(self, language: str | None) -> str | None:
        """``language`` checked against this model ("en" for English-only ones); None = detect."""
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        if not self.multilingual:
            if language not in (None, "en"):
                raise ConfigError(f"{self.ct2_dir.name} is English-only; language={language!r} is not supported")
            return "en"
        if language is not None and language not in _LANGUAGE_CODES:
            raise ConfigError(f"unknown Whisper language code {language!r}; valid codes: {', '.join(_LANGUAGE_CODES)}")
        return language

    def tokenizer(self, language: str):
        """faster-whisper's tokenizer for transcribing ``language`` (English-only models: none needed)."""
        from faster_whisper.tokenizer import Tokenizer

        if self.multilingual:
            return Tokenizer(self._tokenizers, True, task="transcribe", language=language)
        return Tokenizer(self._tokenizers, False)

    def transcribe(self, audio, language: str | None = None, beam_size: int = 5) -> TranscriptResult:
        """Text of 16 kHz mono float32 ``audio`` (an array or a ``saraikit.data.audio.Audio``).

        ``language=None`` lets a multilingual model detect it on the first 30 s window.
        """
        import ctranslate2

        if not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"OnnxEncoderWhisper.transcribe: beam_size must be an int >= 1, got {beam_size!r}")
        language = self.checked_language(language)
        probability = None
        start = time.perf_counter()
        features = feature_frames(audio, self.n_mels)
        features_ms = (time.perf_counter() - start) * 1000
        texts, tokens, encoder_ms, decoder_ms = [], [], 0.0, 0.0
        for offset in range(0, features.shape[1], WINDOW_FRAMES):
            start = time.perf_counter()
            encoded = self.encode(features[:, offset:offset + WINDOW_FRAMES])
            encoder_ms += (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            encoder_output = ctranslate2.StorageView.from_array(encoded)
            if language is None:
                token, probability = self.whisper.detect_language(encoder_output)[0][0]
                language = token[2:-2]  # "<|es|>" -> "es"
            tokenizer = self.tokenizer(language)
            prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
            result = self.whisper.generate(encoder_output, [prompt], beam_size=beam_size,
                                           max_length=MAX_DECODE_LENGTH)[0]
            decoder_ms += (time.perf_counter() - start) * 1000
            tokens.extend(result.sequences_ids[0])
            texts.append(tokenizer.decode(result.sequences_ids[0]).strip())
        return TranscriptResult(text=" ".join(t for t in texts if t), language=language,
                                language_probability=probability, features_ms=features_ms,
                                encoder_ms=encoder_ms, decoder_ms=decoder_ms,
                                windows=features.shape[1] // WINDOW_FRAMES, tokens=tokens)
