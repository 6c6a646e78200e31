"""Kokoro's text front end: espeak-ng IPA -> Kokoro's symbols -> token ids, cut into chunks the model accepts.

Decisions:

- IPA comes from :class:`saraikit.engines.ipa.EspeakIpa` with the tie
  character ``^``, so multi-letter phonemes arrive joined (``t^ʃ``) and are
  mapped to the single symbols Kokoro's vocabulary uses for them (``ʧ``,
  ``ʤ``, ``ʦ``, ``ʣ`` and the diphthong letters ``A I O Q W Y``, ``S``):
  :data:`TIED`. These are the conventions of Kokoro's own G2P (misaki), so
  the ids look like what the model was trained on; ties left over are
  removed, and so are hyphens.
- American English (voices ``en``, ``en-us`` ...) was trained on misaki's
  English lexicon rather than on espeak-ng; :data:`AMERICAN` maps
  espeak-ng's American IPA onto it the way misaki's espeak fallback does (no
  length marks, ``ɚ`` -> ``əɹ``, ``r`` -> ``ɹ``, ``o^ʊ`` -> ``O``, syllabic
  consonants -> ``ᵊ``, and ``o`` -> ``ɔ`` for espeak-ng older than 1.52).
  British English gets :data:`BRITISH`. Other languages get :data:`TIED` only.
- A symbol that is not in the vocabulary is dropped and counted
  (:class:`Encoded.dropped`); the stage reports the counts in its meta.
  Nothing is dropped silently.
- A text longer than :data:`MAX_TOKENS` symbols is cut into chunks of at
  most that many: after the last clause mark (``, . ; : ! ? …``) followed by a
  space within the limit, else at the last space, else (one word longer than
  the limit) at the limit itself, which is counted as a hard cut. Nothing is
  truncated.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from saraikit.core.errors import ModelError

MAX_TOKENS = 510  # ids per call; the model adds a pad id at each end (input length 512)
PAD_ID = 0
TIE = "^"
BREAK_MARKS = frozenset(",.;:!?…")
NOT_SPOKEN = frozenset(" ,.;:!?…—\"“”()")  # marks and spaces: a chunk of these alone says nothing

TIED = {
    "a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q", "s^s": "S",
    "t^s": "ʦ", "t^ʃ": "ʧ", "ɔ^ɪ": "Y",
}
"""espeak-ng's tied phonemes -> Kokoro's single symbols (all languages but English)."""

ENGLISH = {
    "ʔˌn\u0329": "tn", "ʔn\u0329": "tn", "ʔn": "tn", "ʔ": "t", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A",
    "e": "A", "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ",
    "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": "",
}
"""espeak-ng English IPA -> misaki's English symbols (applied first, longest match first)."""

AMERICAN = {"o^ʊ": "O", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə", "ː": "", "o": "ɔ"}
BRITISH = {"e^ə": "ɛː", "iə": "ɪə", "ə^ʊ": "Q"}


def _replace(text: str, table: dict[str, str]) -> str:
    for old in sorted(table, key=len, reverse=True):
        text = text.replace(old, table[old])
    return text


def kokoro_symbols(ipa: str, espeak_voice: str) -> str:
    """espeak-ng IPA (tie ``^``) of voice ``espeak_voice`` in Kokoro's symbols (see the module docstring)."""
    voice = espeak_voice.lower().split("+", 1)[0]
    if voice == "en" or voice.startswith("en-"):
        text = _replace(ipa, ENGLISH)
        text = re.sub(r"(\S)\u0329", r"ᵊ\1", text).replace("\u0329", "")
        british = voice.startswith(("en-gb", "en-uk")) or voice in ("en-029", "en-sc")
        text = _replace(text, BRITISH if british else AMERICAN)
    else:
        text = _replace(ipa, TIED)
    return text.replace(TIE, "").replace("-", "")


def read_vocab(path: str | Path) -> dict[str, int]:
    """Kokoro's symbol -> id map from its ``vocab.json`` (``{"vocab": {...}}``); ModelError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Kokoro vocabulary not found: {path}")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))["vocab"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(f"Kokoro vocabulary {path} is not a vocab.json with a 'vocab' map ({error!r})") from error
    bad = {k: v for k, v in vocab.items() if len(k) != 1 or not isinstance(v, int) or v <= PAD_ID}
    if not vocab or bad:
        raise ModelError(f"Kokoro vocabulary {path}: expected one-character symbols with int ids > 0, "
                         f"got {len(vocab)} entries, bad: {dict(list(bad.items())[:5])}")
    return vocab


@dataclass
class Encoded:
    """Token ids of a phoneme string (no pads) and the symbols that had no id."""

    ids: np.ndarray  # int64
    symbols: str  # the symbols kept, one per id
    dropped: Counter = field(default_factory=Counter)


def encode(phonemes: str, vocab: dict[str, int]) -> Encoded:
    """Ids of the symbols of ``phonemes`` found in ``vocab``; the others are dropped and counted."""
    kept = "".join(symbol for symbol in phonemes if symbol in vocab)
    dropped = Counter(symbol for symbol in phonemes if symbol not in vocab)
    return Encoded(np.array([vocab[s] for s in kept], dtype=np.int64), kept, dropped)


def _cut(symbols: str, limit: int) -> tuple[int, bool]:
    """Where to end the first chunk of ``symbols`` (longer than ``limit``), and whether it is a hard cut."""
    window = symbols[: limit + 1]  # a space right after the limit is still a clean cut
    after_mark = [i for i in range(1, len(window)) if window[i] == " " and window[i - 1] in BREAK_MARKS]
    if after_mark:
        return after_mark[-1], False
    space = window.rfind(" ")
    return (space, False) if space > 0 else (limit, True)


def chunk(encoded: Encoded, limit: int = MAX_TOKENS) -> tuple[list[tuple[str, np.ndarray]], int]:
    """``(symbols, ids)`` chunks of at most ``limit`` ids (see the module docstring), and the number of hard cuts.

    Spaces at the edges of a chunk are left out; every other id is in exactly one chunk."""
    chunks, hard_cuts = [], 0
    symbols, ids = encoded.symbols, encoded.ids
    while True:
        start = len(symbols) - len(symbols.lstrip(" "))
        symbols, ids = symbols[start:], ids[start:]
        if len(symbols) <= limit:
            break
        end, hard = _cut(symbols, limit)
        hard_cuts += hard
        piece = symbols[:end].rstrip(" ")
        chunks.append((piece, ids[: len(piece)]))
        symbols, ids = symbols[end:], ids[end:]
    piece = symbols.rstrip(" ")
    if piece:
        chunks.append((piece, ids[: len(piece)]))
    return chunks, hard_cuts


def speakable(symbols: str) -> bool:
    """True when ``symbols`` hold at least one phoneme (not only marks and spaces)."""
    return any(symbol not in NOT_SPOKEN for symbol in symbols)
