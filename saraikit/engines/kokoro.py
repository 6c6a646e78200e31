"""Text to speech: Kokoro-82M (ONNX) on our own ONNX Runtime session, fed espeak-ng IPA.

Model interface (the provisioned ``kokoro-82m-int8.onnx``): ``tokens`` int64
[1, N + 2] = [0, ids..., 0] with N <= 510 ids from ``vocab.json``; ``style``
float32 [1, 256], the row ``min(N, rows) - 1`` of the speaker's table in the
styles file (``voices_ja.npz``: one [510, 1, 256] table per speaker); ``speed``
float32 [1]. Output: float32 audio at 24 kHz.

Decisions:

- The session is built from an OrtConfig, so tuned session options apply
  (same as :class:`saraikit.engines.piper.PiperTTS`).
- Text -> sentences (:func:`saraikit.data.sentences.split_sentences`, the
  pipeline's cutter) -> espeak-ng IPA clause by clause with the punctuation
  put back (:mod:`saraikit.engines.ipa`) -> Kokoro's symbols and ids
  (:mod:`saraikit.engines.kokoro_text`). The espeak-ng voice comes from the
  stage's ``language`` (:data:`LANGUAGE_VOICES`; any other language is passed
  to espeak-ng as is) unless ``phonemizer_voice`` names one (``es-419`` for
  Latin-American Spanish: ``-v es`` is Castilian, with θ).
- The stream yields one audio part per sentence, or per chunk when a
  sentence is longer than the model's 510 ids (chunked, never truncated).
  Sentences are phonemized one at a time, just before they are spoken, so a
  long text does not delay the first audio; the ``phonemized`` event marks
  the end of the first sentence's phonemization.
- Text with nothing to say (empty, only marks) gives empty audio and
  ``meta["reason"]``, like Piper; a sentence with nothing to say inside a
  longer text is skipped and counted (``meta["silent_sentences"]``).
- Symbols outside the vocabulary are dropped and counted per symbol in
  ``meta["dropped_symbols"]`` (total in ``meta["n_dropped_symbols"]``).
- Audio is Kokoro's own level, clipped to [-1, 1] (no peak normalization:
  the chunks of one sentence keep their relative level).
- Checked when the stage is built, before any model is loaded: the
  language / phonemizer voice (ConfigError naming it), ``style`` (ConfigError
  listing the styles in the file), ``speed`` (a number > 0), the vocabulary
  and the styles file (ModelError naming the file: missing, not an .npz, or
  tables that are not [rows, 256]). At load: the model's inputs (ModelError
  naming the file when it is not a Kokoro model).
"""

from __future__ import annotations

import math
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.audio import Audio
from saraikit.data.sentences import split_sentences
from saraikit.engines import kokoro_text
from saraikit.engines.ipa import EspeakIpa
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.engines.stage import Stage, check_text, join_audio

SAMPLE_RATE = 24000
STYLE_DIM = 256
LANGUAGE_VOICES = {"en": "en-us", "es": "es"}
"""Stage language -> espeak-ng voice; other languages go to espeak-ng as they are."""
DEFAULT_STYLE = "jm_kumo"
"""The stage's style when none is set: the lowest round-trip WER on Spanish in a first check (whisper-base,
the 8 SENTENCES_ES, 2 of 67 words wrong for jm_kumo and jf_gongitsune, 15 for jf_alpha; es-419: jm_kumo 4);
notebook 06 measures every style and the stack names the one it chooses."""
VOCAB_FILE, STYLES_FILE = "vocab.json", "voices_ja.npz"
MODEL_INPUTS = ("tokens", "style", "speed")
WARMUP_TEXT = {"es": "Hola.", "en": "Hello."}


def read_styles(path: str | Path) -> dict[str, np.ndarray]:
    """Speaker name -> float32 [rows, 256] style table from an .npz file; ModelError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Kokoro styles file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            tables = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelError(f"Kokoro styles file {path} is not a readable .npz ({error!r})") from error
    if not tables:
        raise ModelError(f"Kokoro styles file {path} holds no style")
    styles = {}
    for name, table in tables.items():
        if table.ndim not in (2, 3) or table.shape[-1] != STYLE_DIM or table.size // STYLE_DIM != table.shape[0]:
            raise ModelError(f"Kokoro styles file {path}: style {name!r} has shape {table.shape}, "
                             f"expected [rows, 1, {STYLE_DIM}] or [rows, {STYLE_DIM}]")
        styles[name] = np.ascontiguousarray(table.reshape(table.shape[0], STYLE_DIM), dtype=np.float32)
    return styles


def style_names(model_path: str | Path, styles_path: str | Path | None = None) -> list[str]:
    """The speaker styles available to the Kokoro model at ``model_path`` (its styles file's names), sorted."""
    return sorted(read_styles(styles_path or Path(model_path).with_name(STYLES_FILE)))


def espeak_voice_for(language: str, phonemizer_voice: str | None = None) -> str:
    """The espeak-ng voice that phonemizes ``language`` (``phonemizer_voice`` wins when given)."""
    return phonemizer_voice or LANGUAGE_VOICES.get(language, language)


def _check_speed(speed) -> float:
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed) or speed <= 0:
        raise ConfigError(f"KokoroTTS.speed must be a number > 0 (1.0 = the model's pace), got {speed!r}")
    return float(speed)


class KokoroTTS(Stage):
    """Kokoro-82M run on our own ONNX Runtime session; float32 audio at 24 kHz."""

    kind = "tts"
    SETTINGS = ("style", "speed", "phonemizer_voice")

    def __init__(
        self,
        model_path: str | Path,
        ort_config: OrtConfig | None = None,
        language: str = "en",
        style: str = DEFAULT_STYLE,
        speed: float = 1.0,
        phonemizer_voice: str | None = None,
        vocab_path: str | Path | None = None,
        styles_path: str | Path | None = None,
        name: str | None = None,
    ):
        super().__init__(name or Path(model_path).stem)
        self.model_path = Path(model_path)
        self.ort_config = ort_config or OrtConfig()
        self.language = language
        self.speed = _check_speed(speed)
        self.espeak_voice = espeak_voice_for(language, phonemizer_voice)
        where = f"tts {self.name!r} (language {language!r})"
        try:
            self._ipa = EspeakIpa(self.espeak_voice, tie=kokoro_text.TIE)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        self.vocab = kokoro_text.read_vocab(vocab_path or self.model_path.with_name(VOCAB_FILE))
        self.styles_path = Path(styles_path or self.model_path.with_name(STYLES_FILE))
        styles = read_styles(self.styles_path)
        if style not in styles:
            raise ConfigError(f"{where}: unknown style {style!r}; styles in {self.styles_path}: {sorted(styles)}")
        self.style = style
        self.style_table = styles[style]
        self.sample_rate = SAMPLE_RATE
        self.session = None
        self._token_input = MODEL_INPUTS[0]

    def _load(self) -> None:
        session = build_ort_session(self.model_path, self.ort_config)
        names = [i.name for i in session.get_inputs()]
        token_input = next((n for n in ("tokens", "input_ids") if n in names), None)
        if token_input is None or set(names) != {token_input, "style", "speed"}:
            raise ModelError(f"{self.model_path} is not a Kokoro model: its inputs are {names}, expected "
                             f"{list(MODEL_INPUTS)} (tokens int64 [1, N+2], style float32 [1, 256], speed [1])")
        self.session, self._token_input = session, token_input

    # --- text -> ids ---------------------------------------------------------------------------

    def phonemes(self, text: str) -> str:
        """Kokoro symbols for ``text`` (espeak-ng IPA with punctuation, mapped), before the vocabulary."""
        return kokoro_text.kokoro_symbols(self._ipa(text), self.espeak_voice)

    def chunks(self, text: str) -> tuple[list[tuple[str, np.ndarray]], Counter, int]:
        """``text`` as ``(symbols, ids)`` chunks of at most 510 ids, the dropped symbols and the hard cuts."""
        encoded = kokoro_text.encode(self.phonemes(text), self.vocab)
        pieces, hard_cuts = kokoro_text.chunk(encoded)
        return [(s, i) for s, i in pieces if kokoro_text.speakable(s)], encoded.dropped, hard_cuts

    def feeds(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """The model inputs for one chunk of ids (without pads; at most 510)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not 0 < ids.size <= kokoro_text.MAX_TOKENS:
            raise ConfigError(f"tts {self.name!r}: a chunk holds 1..{kokoro_text.MAX_TOKENS} ids, got {ids.size}")
        row = min(ids.size, len(self.style_table)) - 1
        return {
            self._token_input: np.concatenate([[kokoro_text.PAD_ID], ids, [kokoro_text.PAD_ID]])[None],
            "style": self.style_table[row][None],
            "speed": np.array([self.speed], dtype=np.float32),
        }

    def synthesize_ids(self, ids: np.ndarray) -> np.ndarray:
        """float32 audio in [-1, 1] for one chunk of ids."""
        audio = self.session.run(None, self.feeds(ids))[0].reshape(-1).astype(np.float32)
        return np.clip(audio, -1.0, 1.0)

    # --- the stage --------------------------------------------------------------------------------

    def _check_input(self, text):
        return check_text(text, f"tts {self.name!r}")

    def _produce(self, text, mark, meta):
        sentences = split_sentences(text)
        dropped = Counter()
        meta.update(sentences=len(sentences), chunks=0, phoneme_ids=0, silent_sentences=0, hard_cuts=0,
                    style=self.style, speed=self.speed, phonemizer_voice=self.espeak_voice,
                    dropped_symbols={}, n_dropped_symbols=0)
        for position, sentence in enumerate(sentences):
            chunks, sentence_dropped, hard_cuts = self.chunks(sentence)
            if position == 0:
                mark("phonemized")
            dropped.update(sentence_dropped)
            meta.update(dropped_symbols=dict(dropped), n_dropped_symbols=sum(dropped.values()))
            meta["hard_cuts"] += hard_cuts
            meta["silent_sentences"] += not chunks
            for _, ids in chunks:
                meta["chunks"] += 1
                meta["phoneme_ids"] += len(ids)
                yield Audio(self.synthesize_ids(ids), self.sample_rate)
        if not sentences:
            mark("phonemized")
        if not meta["chunks"]:
            meta["reason"] = "no speakable text (nothing espeak-ng could phonemize)"

    def _join(self, parts, meta):
        return join_audio(parts, self.sample_rate)

    def warmup_input(self):
        return WARMUP_TEXT.get(self.language, "Hello.")
