"""Cut streamed text (LLM tokens) into sentences as soon as each one is complete.

The text-to-speech stage speaks sentence by sentence, so the first sentence
should leave here the moment it is certain to be finished, not when the LLM
stops.

Decisions:

- A sentence ends at a run of terminators (``.``, ``!``, ``?``, ``…``,
  ``...``), plus any closing quotes or brackets, that is followed by
  whitespace and then a character that is not lowercase. Waiting for that
  next character is what tells "3.5", "e.g. this" and "¿Vienes? dijo él"
  apart from real ends. With LLM tokens it costs nothing in practice: the
  token after a period is usually " The", which brings the space and the
  next letter together.
- ``¿`` and ``¡`` open a Spanish sentence, so they count as a sentence start
  (they are not lowercase); they are never terminators.
- A period after a known abbreviation (titles such as "Dr.", "Sra.", and
  "e.g.", "p. ej.", "EE. UU.") or after a single letter (initials "J. K.")
  does not end a sentence. Words that often end a sentence ("etc.", "a.m.",
  "No.") are deliberately not in the list: the lowercase rule keeps
  "etc. and" together and an uppercase word after them is a new sentence.
- A newline ends a sentence without waiting (LLMs use it for list items and
  paragraphs).
- A candidate shorter than ``min_chars`` (stripped) is not cut; its text is
  merged with the next sentence, so the TTS never gets "Yes." on its own.
  ``flush()`` returns whatever is left, however short.
- No maximum length: a long sentence without punctuation is held until it
  ends (cutting at commas would change the prosody).
- ``first_clause=True`` lets the *first* piece end at a comma, semicolon or
  colon followed by a space (again at least ``min_chars`` long): the first
  audio then needs only the first clause, a lever on time to first audio that
  costs a pause in the prosody. Later pieces are whole sentences.
- ``first_words=N`` (N > 0) lets the *first* piece end after its N-th whole
  word (a word is whole once a space follows it), or earlier at a clause or
  sentence end: the TTS starts on a few words, the most aggressive lever on
  time to first audio, paid with a break inside the phrase. Later pieces are
  whole sentences.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from saraikit.core.errors import ConfigError

TERMINATORS = ".!?…"
CLOSERS = "\"'”’»)]"
# Lowercased, without the final period; dotted forms keep their inner dots ("e.g", "ee. uu" -> "uu").
ABBREVIATIONS = frozenset({
    # English
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "e.g", "i.e", "approx", "fig", "inc", "ltd",
    # Spanish
    "sra", "srta", "sres", "dra", "dña", "ud", "uds", "vd", "vds", "lic", "ing", "arq", "av", "avda", "col",
    "pág", "págs", "núm", "art", "aprox", "ej", "ee", "uu", "cía", "depto", "dpto", "tel",
})
DEFAULT_MIN_CHARS = 10

_CANDIDATE = re.compile(rf"(?P<end>[{re.escape(TERMINATORS)}]+[{re.escape(CLOSERS)}]*)|(?P<newline>\n)")
_WORD_BEFORE = re.compile(r"(\w+(?:\.\w+)*)$")
_CLAUSE_END = re.compile(r"[,;:](?=\s)")
_WHOLE_WORD = re.compile(r"\S+(?=\s)")


class SentenceCutter:
    """Feed text chunks; get back each sentence once it is complete.

    >>> cutter = SentenceCutter()
    >>> cutter.feed("Hello there, friend. How")
    ['Hello there, friend.']
    >>> cutter.feed(" are you?")
    []
    >>> cutter.flush()
    ['How are you?']
    """

    def __init__(self, min_chars: int = DEFAULT_MIN_CHARS, abbreviations: Iterable[str] = ABBREVIATIONS,
                 first_clause: bool = False, first_words: int = 0):
        if not isinstance(min_chars, int) or min_chars < 0:
            raise ConfigError(f"SentenceCutter.min_chars must be an int >= 0, got {min_chars!r}")
        if isinstance(first_words, bool) or not isinstance(first_words, int) or first_words < 0:
            raise ConfigError(f"SentenceCutter.first_words must be an int >= 0, got {first_words!r}")
        self.min_chars = min_chars
        self.first_clause = bool(first_clause) or first_words > 0
        self.first_words = first_words
        self._emitted = 0
        self.abbreviations = frozenset(a.lower().rstrip(".") for a in abbreviations)
        self._buffer = ""
        self._scan_from = 0  # candidates before this index were rejected for good

    def feed(self, chunk: str) -> list[str]:
        """Add ``chunk``; return the sentences it completed (often none)."""
        self._buffer += chunk
        sentences = []
        while (cut := self._next_cut()) is not None:
            sentences.append(self._buffer[:cut].strip())
            self._buffer = self._buffer[cut:]
            self._scan_from = 0
            self._emitted += 1
        return sentences

    def flush(self) -> list[str]:
        """The rest of the text as a last sentence (empty list when only whitespace is left)."""
        rest, self._buffer, self._scan_from = self._buffer.strip(), "", 0
        return [rest] if rest else []

    def cut(self, chunks: Iterable[str]) -> Iterator[str]:
        """Every sentence of a stream of chunks, each yielded as soon as it is complete, then the rest."""
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.flush()

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a sentence."""
        return self._buffer

    def _next_cut(self) -> int | None:
        """Index just past the first confirmed end (a sentence's, or the first clause's) in the buffer, or None."""
        cut = self._next_sentence_cut()
        if self.first_clause and not self._emitted:
            clause = next((m.end() for m in _CLAUSE_END.finditer(self._buffer)
                           if len(self._buffer[: m.end()].strip()) >= self.min_chars), None)
            if clause is not None and (cut is None or clause < cut):
                cut = clause
            words = self._words_cut() if self.first_words else None
            if words is not None and (cut is None or words < cut):
                cut = words
        return cut

    def _words_cut(self) -> int | None:
        """Index just past the ``first_words``-th whole word of the buffer (one followed by whitespace), or a later
        one when the text so far is shorter than ``min_chars``; None when there is no such word yet."""
        for count, word in enumerate(_WHOLE_WORD.finditer(self._buffer), start=1):
            if count >= self.first_words and len(self._buffer[: word.end()].strip()) >= self.min_chars:
                return word.end()
        return None

    def _next_sentence_cut(self) -> int | None:
        undecided = False
        for match in _CANDIDATE.finditer(self._buffer, self._scan_from):
            verdict = self._judge(match)
            if verdict is None:
                undecided = True  # need more text; later candidates may still decide (a newline)
                continue
            if verdict and len(self._buffer[: match.end()].strip()) >= self.min_chars:
                return match.end()
            if not undecided:
                self._scan_from = match.end()
        return None

    def _judge(self, match: re.Match) -> bool | None:
        """True: a sentence ends here; False: it does not; None: cannot tell yet."""
        if match.group("newline"):
            return bool(self._buffer[: match.start()].strip())
        after = self._buffer[match.end():]
        if not after:
            return None
        if not after[0].isspace():
            return False  # "3.5", "e.g.x", "?,"
        following = after.lstrip()
        if not following:
            return None
        if following[0].islower():
            return False
        return not self._is_abbreviation(match)

    def _is_abbreviation(self, match: re.Match) -> bool:
        if match.group("end")[0] != ".":
            return False
        word = _WORD_BEFORE.search(self._buffer, 0, match.start())
        if word is None:
            return False
        word = word.group(1).lower()
        single_letter = len(word) == 1 and word.isalpha()
        return single_letter or word in self.abbreviations


def split_sentences(text: str, min_chars: int = DEFAULT_MIN_CHARS) -> list[str]:
    """All sentences of a complete text (same rules as the streaming cutter)."""
    return list(SentenceCutter(min_chars).cut([text]))
