"""Real inputs for the default ONNX models: log-mel features of recorded speech, Piper phoneme ids of real sentences.

``real_feeds(model_name, n, split)`` returns ``n`` feed dicts (``{input name:
array}``) ready for ``session.run``, ``saraikit.bench.OnnxBench(feeds=...)``
and ``saraikit.experiments.quantize`` (calibration, ``compare_outputs``). A
model without a recipe here raises ConfigError; the caller then falls back to
synthetic inputs and labels them so.

Decisions
---------
- Two disjoint splits, so that quantization is never judged on the inputs
  it was calibrated on: ``"calibration"`` and ``"evaluation"``.

  * English speech. Evaluation: the 10 transcribed clips of
    ``librivox_en`` + ``cards_en`` (WER needs references). Calibration: the 4
    untranscribed English recordings that ship beside them in
    ``pocketsphinx-testdata`` (``goforward.raw``, ``numbers.raw``,
    ``something.raw``, ``tidigits/dhd.2934z.raw``: headerless 16 kHz 16-bit
    mono PCM; activation ranges need speech, not transcripts).
  * Spanish speech (``asterisk_es``, clips up to 30 s, one Whisper window):
    even positions are the evaluation pool, odd positions the calibration
    pool.
  * Sentences: :data:`SENTENCES_EN` (evaluation, the TTS round trip) and
    :data:`CALIBRATION_SENTENCES_EN` (calibration) share no sentence.

- Selection is deterministic: ``n`` of a pool are taken evenly spaced
  (``saraikit.datasets.filter``'s rule), so a small ``n`` spans the pool.
  Asking for more than a pool holds is a DataError naming the pool's size:
  repeating inputs would shrink the spread silently.
- Whisper features follow ``saraikit.whisper_onnx.feature_frames``
  (faster-whisper's extractor, padded to 30 s); audio is resampled to 16 kHz
  first (the Asterisk prompts are 8 kHz). A clip gives one feed, its first 30 s
  window: ``mel`` [1, n_mels, 3000] float32. Whisper always sees 3000 frames,
  so every encoder feed has the same shape and the same cost.
- ``whisper-base`` is multilingual and serves Spanish as well: its feeds are
  English first (``ceil(n / 2)``), then Spanish. ``whisper-tiny.en`` gets
  English only.
- Piper feeds use the voice's own front end (``PiperTTS.phoneme_ids``, i.e.
  piper's espeak phonemizer and id map), one sentence per feed. The default
  scales are
  :data:`saraikit.engines.quant_variants.PIPER_DETERMINISTIC_SCALES`
  ``[0, 1, 0]`` (noise_scale, length_scale, noise_w): with noise the voice
  draws random numbers and two FP32 runs differ, so fidelity against FP32
  would measure the noise. ``noise=True`` gives the voice's configured scales (what the
  voice uses in production) for latency runs; the cost is the same, the
  output is not reproducible.
- Kokoro feeds (``kokoro-82m``) use the stage's own front end
  (``KokoroTTS.chunks`` / ``feeds``: espeak-ng IPA with punctuation, Kokoro's
  vocabulary, the style row for the phoneme count), style
  :data:`saraikit.engines.kokoro.DEFAULT_STYLE`, speed 1, one sentence per
  feed. Evaluation: Spanish first (``ceil(n / 2)`` of :data:`SENTENCES_ES`,
  espeak-ng ``es``), then English (:data:`SENTENCES_EN`, ``en-us``), the
  whisper-base order reversed because Kokoro is here for Spanish.
  Calibration: :data:`CALIBRATION_SENTENCES_EN` (there is no Spanish
  calibration set; the model ships as int8 and is not requantized anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from saraikit.core.errors import ConfigError, DataError
from saraikit.data import datasets
from saraikit.data.audio import SAMPLE_RATE, read_16k
from saraikit.data.datasets import Clip
from saraikit.engines.kokoro import KokoroTTS
from saraikit.engines.piper import PiperTTS
from saraikit.engines.whisper_export import INPUT_NAME
from saraikit.engines.whisper_onnx import WINDOW_FRAMES, feature_frames
from saraikit.engines.quant_variants import PIPER_DETERMINISTIC_SCALES
from saraikit.models import catalog

SPLITS = ("calibration", "evaluation")
MAX_CLIP_S = 30.0  # one Whisper window

SPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
UNTRANSCRIBED_EN = ("goforward.raw", "numbers.raw", "something.raw", "tidigits/dhd.2934z.raw")

# What a voice assistant says: short answers, confirmations, numbers, names, questions.
SENTENCES_EN = (
    "Sure, I have set a timer for ten minutes.",
    "The weather today is sunny with a high of twenty two degrees.",
    "Your next meeting starts at three o'clock in the afternoon.",
    "I could not find any restaurants open near you right now.",
    "Turning off the lights in the living room.",
    "Do you want me to read your new messages?",
    "The train to Boston leaves from platform four.",
    "I added milk, eggs and bread to your shopping list.",
    "It will probably rain tomorrow morning, so take an umbrella.",
    "Calling your mother on her mobile phone.",
    "The capital of Australia is Canberra, not Sydney.",
    "Sorry, I did not catch that. Could you say it again?",
    "Your package was delivered to the front door an hour ago.",
    "The music volume is now at forty percent.",
    "There is heavy traffic on the highway, the trip will take about half an hour.",
    "I have reminded you to water the plants every Sunday.",
    "The pharmacy closes at nine in the evening.",
    "Playing the latest episode of your favourite podcast.",
    "A kilometre is a little more than six tenths of a mile.",
    "Good night, I will wake you up at seven tomorrow.",
)
"""Evaluation sentences (TTS round trip, latency and fidelity feeds)."""

CALIBRATION_SENTENCES_EN = (
    "Hello, how can I help you today?",
    "The oven is preheating to two hundred degrees.",
    "Your flight to Madrid has been delayed by forty minutes.",
    "I found three coffee shops within walking distance.",
    "Should I lock the front door as well?",
    "The battery of your phone is almost empty.",
    "Opening the garage door now.",
    "Here is a short summary of the latest news.",
)
"""Calibration sentences for Piper; no sentence is shared with :data:`SENTENCES_EN`."""

SENTENCES_ES = (
    "Claro, he puesto una alarma a las siete de la mañana.",
    "Hoy hace sol y la temperatura máxima será de veinte grados.",
    "No encontré ningún restaurante abierto cerca de usted.",
    "¿Quiere que le lea sus mensajes nuevos?",
    "Apagando las luces de la sala.",
    "Su paquete llegará mañana por la tarde.",
    "Lo siento, no le entendí. ¿Puede repetirlo?",
    "Añadí leche, huevos y pan a su lista de compras.",
)
"""Spanish assistant sentences (for a Spanish voice; the default voice is English)."""

ENCODER_LANGUAGES = {"whisper-tiny.en": ("en",), "whisper-base": ("en", "es")}
EVALUATION_SETS = {"en": "librivox_en + cards_en", "es": "asterisk_es (even positions)"}
"""Names of the evaluation speech per language, for tables and KPI rows."""
PIPER_VOICES = ("piper-en_US-joe-medium",)
KOKORO_MODELS = ("kokoro-82m",)
KOKORO_LANGUAGES = ("es", "en")


# ---------------------------------------------------------------------------
# Speech clips


def _evenly(items: Sequence, n: int | None, what: str) -> list:
    """``n`` evenly spaced items, in order (all when n is None); more than there are is a DataError."""
    items = list(items)
    if n is None:
        return items
    if not isinstance(n, int) or n < 1:
        raise DataError(f"{what}: n must be a positive int, got {n!r}")
    if n > len(items):
        raise DataError(f"{what}: asked for {n} inputs, the pool holds {len(items)}")
    return [items[i * len(items) // n] for i in range(n)]


def _untranscribed_clips(data_dir: Path = SPHINX_DATA):
    clips = []
    for name in UNTRANSCRIBED_EN:
        path = data_dir / name
        if not path.is_file():
            raise DataError(f"{path}: missing; install the Debian package pocketsphinx-testdata")
        duration = path.stat().st_size / 2 / SAMPLE_RATE
        clips.append(Clip(id=name.removesuffix(".raw"), path=path, language="en", duration_s=duration,
                          sample_rate=SAMPLE_RATE, reference="", source="pocketsphinx-testdata (untranscribed)"))
    return clips


def speech_clips(language: str, split: str, n: int | None = None) -> list:
    """Real speech clips (``saraikit.datasets.Clip``) of one language and split; see the module docstring."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if language == "en":
        if split == "calibration":
            pool = _untranscribed_clips()
        else:
            sets = datasets.default_datasets()
            pool = sets["librivox_en"].clips + sets["cards_en"].clips
    elif language == "es":
        spanish = datasets.filter(datasets.default_datasets()["asterisk_es"], max_duration_s=MAX_CLIP_S).clips
        pool = spanish[0::2] if split == "evaluation" else spanish[1::2]
    else:
        raise ConfigError(f"no real speech for language {language!r}; available: en, es")
    return _evenly(pool, n, f"{language} {split} speech")


def mel_features(clips: Sequence, n: int | None = None, n_mels: int = 80) -> list[dict[str, np.ndarray]]:
    """``{"mel": [1, n_mels, 3000] float32}`` per clip (its first 30 s window), for ``n`` evenly spaced clips."""
    feeds = []
    for clip in _evenly(clips, n, "mel_features clips"):
        frames = feature_frames(read_16k(clip.path), n_mels)[:, :WINDOW_FRAMES]
        feeds.append({INPUT_NAME: np.ascontiguousarray(frames[None], dtype=np.float32)})
    return feeds


# ---------------------------------------------------------------------------
# Piper phoneme ids


def _voice(voice_path: str | Path, noise: bool):
    if noise:
        return PiperTTS(voice_path)
    noise_scale, length_scale, noise_w = PIPER_DETERMINISTIC_SCALES
    return PiperTTS(voice_path, noise_scale=noise_scale, length_scale=length_scale, noise_w=noise_w)


def sentences(n: int | None = None, split: str = "evaluation") -> list[str]:
    """``n`` evenly spaced sentences of :data:`SENTENCES_EN` (evaluation) or :data:`CALIBRATION_SENTENCES_EN`."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    pool = SENTENCES_EN if split == "evaluation" else CALIBRATION_SENTENCES_EN
    return _evenly(pool, n, f"{split} sentences")


def phoneme_feeds(sentences: Sequence[str], voice_path: str | Path, noise: bool = False) -> list[dict[str, np.ndarray]]:
    """Piper feeds (``input`` [1, L] int64, ``input_lengths`` [1], ``scales`` [3]) per one-sentence text.

    ``noise=False`` sets the scales to [0, 1, 0] (deterministic output, for
    fidelity); ``noise=True`` keeps the voice's configured scales."""
    if isinstance(sentences, str) or not sentences:
        raise DataError("phoneme_feeds: expected a non-empty list of sentences")
    voice = _voice(voice_path, noise)
    return [voice.feeds(voice.phoneme_ids(sentence)) for sentence in sentences]


def kokoro_texts(n: int, split: str = "evaluation") -> list[tuple[str, str]]:
    """``(language, sentence)`` pairs behind Kokoro's real feeds (see the module docstring)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "calibration":
        return [("en", sentence) for sentence in sentences(n, "calibration")]
    if not isinstance(n, int) or n < 1:
        raise DataError(f"kokoro sentences: n must be a positive int, got {n!r}")
    pools = {"es": SENTENCES_ES, "en": SENTENCES_EN}
    return [(language, sentence) for language, count in _split_counts(n, KOKORO_LANGUAGES).items()
            for sentence in _evenly(pools[language], count, f"{language} {split} sentences")]


def kokoro_feeds(texts: Sequence[tuple[str, str]], model_path: str | Path) -> list[dict[str, np.ndarray]]:
    """Kokoro feeds (``tokens`` [1, N + 2], ``style`` [1, 256], ``speed`` [1]) per ``(language, sentence)``."""
    if isinstance(texts, str) or not texts:
        raise DataError("kokoro_feeds: expected a non-empty list of (language, sentence) pairs")
    voices, feeds = {}, []
    for language, sentence in texts:
        voice = voices.get(language) or voices.setdefault(language, KokoroTTS(model_path, language=language))
        chunks, _, _ = voice.chunks(sentence)
        if len(chunks) != 1:
            raise DataError(f"kokoro_feeds: {sentence!r} gives {len(chunks)} chunks; a feed is one sentence")
        feeds.append(voice.feeds(chunks[0][1]))
    return feeds


# ---------------------------------------------------------------------------
# Dispatch for the default models


@dataclass(frozen=True)
class Recipe:
    """Where a default model's real inputs come from (shown in notebooks beside the figures)."""

    model_name: str
    kind: str  # "whisper-encoder" | "piper" | "kokoro"
    description: str


def recipe(model_name: str) -> Recipe:
    """The real-input recipe of a default model (``whisper-x`` and ``whisper-x-encoder`` are the same)."""
    base = model_name.removesuffix("-encoder")
    if base in ENCODER_LANGUAGES:
        languages = " + ".join(ENCODER_LANGUAGES[base])
        return Recipe(base, "whisper-encoder",
                      f"log-mel features [1, 80, 3000] of recorded speech ({languages}); evaluation: "
                      "librivox_en + cards_en" + (" + asterisk_es (even positions)" if "es" in languages else "")
                      + "; calibration: untranscribed pocketsphinx recordings"
                      + (" + asterisk_es (odd positions)" if "es" in languages else ""))
    if model_name in PIPER_VOICES:
        return Recipe(model_name, "piper",
                      "phoneme ids of real assistant sentences (piper's phonemizer), scales [0, 1, 0]; "
                      "evaluation: SENTENCES_EN, calibration: CALIBRATION_SENTENCES_EN")
    if model_name in KOKORO_MODELS:
        return Recipe(model_name, "kokoro",
                      "phoneme ids of real assistant sentences (espeak-ng IPA -> Kokoro vocabulary), one style, "
                      "speed 1; evaluation: SENTENCES_ES (espeak-ng es) then SENTENCES_EN (en-us); "
                      "calibration: CALIBRATION_SENTENCES_EN")
    known = sorted(ENCODER_LANGUAGES) + list(PIPER_VOICES) + list(KOKORO_MODELS)
    raise ConfigError(f"no real-input recipe for model {model_name!r} (known: {', '.join(known)}); "
                      "use synthetic inputs (saraikit.synthetic) and label them as such")


def _split_counts(n: int, languages: tuple[str, ...]) -> dict[str, int]:
    first = math.ceil(n / len(languages))
    counts = {languages[0]: first}
    for language in languages[1:]:
        counts[language] = (n - first) // (len(languages) - 1)
    return {language: count for language, count in counts.items() if count}


def encoder_clips(model_name: str, n: int, split: str = "evaluation") -> list:
    """The speech clips behind ``real_feeds`` of a Whisper encoder (English first, then Spanish for base)."""
    base = recipe(model_name).model_name
    if base not in ENCODER_LANGUAGES:
        raise ConfigError(f"{model_name!r} is not a Whisper model with an encoder recipe")
    if not isinstance(n, int) or n < 1:
        raise DataError(f"{model_name}: n must be a positive int, got {n!r}")
    counts = _split_counts(n, ENCODER_LANGUAGES[base])
    return [clip for language, count in counts.items() for clip in speech_clips(language, split, count)]


def real_feeds(model_name: str, n: int, split: str = "evaluation", noise: bool = False) -> list[dict[str, np.ndarray]]:
    """``n`` real-input feed dicts for a default model (ConfigError when there is no recipe)."""
    kind = recipe(model_name).kind
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if kind == "whisper-encoder":
        return mel_features(encoder_clips(model_name, n, split))
    if kind == "kokoro":
        return kokoro_feeds(kokoro_texts(n, split), catalog.model_path(model_name))
    return phoneme_feeds(sentences(n, split), catalog.model_path(model_name), noise=noise)
