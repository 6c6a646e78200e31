"""espeak-ng IPA of a text, clause by clause, with the punctuation put back.

Phoneme-input voices (Kokoro) are trained on IPA that keeps the text's
punctuation (``ˈola, kˈe tˈal?``): the marks carry the pauses and the
intonation. ``espeak-ng --ipa`` drops them and prints one line per clause, so
this module cuts the text into clauses itself, phonemizes them and attaches
each clause's marks again.

Decisions:

- A clause ends at a run of the marks in :data:`CLAUSE_MARKS` followed by
  whitespace or the end of the text ("3.5", "I'm", "e-mail" stay whole). A
  period after an abbreviation or a single letter does not end a clause
  (the list of :mod:`saraikit.data.sentences`, shared with the sentence
  cutter); espeak-ng expands "Sr." and "Dr." itself.
- Opening marks (``"`` ``“`` ``(`` ``«``) are kept in front of their clause and
  closing ones (``”`` ``)`` ``»``) behind it; ``«`` and ``»`` become ``“`` and ``”``.
  ``¿`` and ``¡`` are removed: the closing ``?`` and ``!`` carry the question
  and the exclamation, and phoneme vocabularies built for English have no
  symbol for them. Nothing else of the text is touched: espeak-ng reads or
  ignores the rest (digits, "%", "&"). A clause without a letter or a digit
  ("--", "*") is not sent to espeak-ng: its marks are kept, nothing is said.
  Quotes and brackets bound clauses too, as in the phonemizer Kokoro's
  training text went through.
- One espeak-ng process per call, one clause per input line (espeak-ng reads
  stdin line by line). espeak-ng may still cut a line into several (it ends a
  clause after "Sr." and splits very long lines); when the number of output
  lines is not the number of clauses, every clause is phonemized again in a
  process of its own and its lines are joined with spaces. The fast path
  costs one process start (about 6 ms here) whatever the number of clauses.
- Language-switch flags (``(en)`` ... ``(es)``, which espeak-ng prints around
  a foreign word) are removed.
- ``tie``: espeak-ng's ``--tie`` character inside multi-letter phonemes
  (``t^ʃ``), so a caller can map them to single symbols; None prints none.
- A voice is checked against ``espeak-ng --voices`` when the phonemizer is
  built (ConfigError naming it), so a stack with a language espeak-ng does not
  know fails before any model is loaded. A missing executable is a ModelError
  naming the Debian package, like :class:`saraikit.engines.espeak.EspeakTTS`.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.sentences import ABBREVIATIONS
from saraikit.engines.espeak import ESPEAK_HINT

CLAUSE_MARKS = ",.;:!?…—"
OPENING = {'"': '"', "“": "“", "(": "(", "«": "“"}
CLOSING = {'"': '"', "”": "”", ")": ")", "»": "”"}
REMOVED = "¿¡"  # no symbol in the vocabularies; the closing mark carries the intonation

_ENDING = rf"(?:\.\.\.|[{re.escape(CLAUSE_MARKS)}])+"
_TOKEN = re.compile(
    rf"(?P<end>{_ENDING})(?=[\"”»)]*(?:\s|$))"  # ending marks, then whitespace or the end of the text
    r"|(?P<open>(?<!\S)[\"“(«])"  # an opening mark at the start of a word
    rf"|(?P<close>[\"”)»])(?=[\"”»)]*(?:\s|$|{_ENDING}))"  # a closing mark at the end of a word
)
_WORD_BEFORE = re.compile(r"(\w+(?:\.\w+)*)$")
_LANGUAGE_FLAG = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")


@dataclass(frozen=True)
class Clause:
    """A stretch of text espeak-ng reads as one clause, and the marks around it."""

    text: str
    before: str = ""  # opening marks, e.g. "“"
    after: str = ""  # closing and ending marks, e.g. ",", "?”"


def _is_abbreviation(text: str, end: re.Match) -> bool:
    if end.group(0) != "." or not text[end.end():].strip():  # the end of the text ends the clause
        return False
    word = _WORD_BEFORE.search(text, 0, end.start())
    if word is None:
        return False
    word = word.group(1).lower()
    return (len(word) == 1 and word.isalpha()) or word in ABBREVIATIONS


class _Clauses:
    """Accumulates text and marks into clauses (the state of :func:`split_clauses`)."""

    def __init__(self):
        self.clauses: list[Clause] = []
        self.text, self.before, self.after = "", "", ""

    def add_text(self, text: str) -> None:
        if text.strip():
            if self.after:  # text after a closing mark starts a new clause
                self.flush()
            self.text += text

    def flush(self) -> None:
        text = " ".join(self.text.split())
        text = text if re.search(r"\w", text) else ""  # no letter or digit: nothing espeak-ng would say
        if text or self.before or self.after:
            self.clauses.append(Clause(text, self.before, self.after))
        self.text, self.before, self.after = "", "", ""


def split_clauses(text: str) -> list[Clause]:
    """The clauses of ``text`` with their marks (see the module docstring)."""
    text = "".join(" " if ch in REMOVED else ch for ch in text)
    state, position = _Clauses(), 0
    for token in _TOKEN.finditer(text):
        if token.lastgroup == "end" and _is_abbreviation(text, token):
            continue
        state.add_text(text[position:token.start()])
        position, mark = token.end(), token.group(0)
        if token.lastgroup == "open":
            if state.text.strip() or state.after:
                state.flush()
            state.before += OPENING[mark]
        elif token.lastgroup == "close":
            state.after += CLOSING[mark]
        else:
            state.after += mark.replace("...", "…")
            state.flush()
    state.add_text(text[position:])
    state.flush()
    return state.clauses


def _voice_names(listing: str) -> frozenset[str]:
    """Every name ``espeak-ng -v`` accepts, from the table ``espeak-ng --voices`` prints."""
    names = set()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        names.add(fields[1].lower())
        names.update({fields[4].lower(), fields[4].rsplit("/", 1)[-1].lower()})
        names.update(re.findall(r"\(([a-z0-9-]+) \d+\)", line.lower()))
    return frozenset(names)


@functools.lru_cache(maxsize=4)
def espeak_voices(executable: str = "espeak-ng") -> frozenset[str]:
    """The voice and language names espeak-ng knows (``-v`` accepts each); ModelError when it is missing."""
    path = shutil.which(executable)
    if path is None:
        raise ModelError(f"the {executable!r} command was not found; {ESPEAK_HINT}")
    done = subprocess.run([path, "--voices"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ModelError(f"{executable} --voices failed (exit {done.returncode}): {done.stderr.strip()}")
    return _voice_names(done.stdout)


def check_espeak_voice(voice: str, where: str, executable: str = "espeak-ng") -> str:
    """``voice`` when espeak-ng knows it (a ``+variant`` suffix is allowed); ConfigError naming it otherwise."""
    if not isinstance(voice, str) or not voice.strip():
        raise ConfigError(f"{where}: expected an espeak-ng voice name (e.g. 'es', 'es-419', 'en-us'), got {voice!r}")
    known = espeak_voices(executable)
    base = voice.split("+", 1)[0].lower()
    if base not in known:
        close = sorted(name for name in known if name.split("-")[0] == base.split("-")[0])
        hint = f"close ones: {', '.join(close)}" if close else "see `espeak-ng --voices`"
        raise ConfigError(f"{where}: espeak-ng does not know the language/voice {voice!r}; {hint}")
    return voice


class EspeakIpa:
    """``EspeakIpa("es")(text)`` -> IPA with the text's punctuation, e.g. ``"ˈola, kˈe tˈal?"``."""

    def __init__(self, voice: str, tie: str | None = None, executable: str = "espeak-ng"):
        self.voice = check_espeak_voice(voice, "EspeakIpa", executable)
        if tie is not None and (not isinstance(tie, str) or len(tie) != 1):
            raise ConfigError(f"EspeakIpa.tie must be one character or None, got {tie!r}")
        self.tie = tie
        self.executable = shutil.which(executable) or executable

    def _run(self, lines: list[str]) -> list[str]:
        command = [self.executable, "-q", "--ipa", "-v", self.voice] + ([f"--tie={self.tie}"] if self.tie else [])
        try:
            done = subprocess.run(command, input="\n".join(lines) + "\n", capture_output=True, text=True,
                                  encoding="utf-8", timeout=120)
        except FileNotFoundError:
            raise ModelError(f"the {self.executable!r} command was not found; {ESPEAK_HINT}") from None
        if done.returncode != 0:
            raise ModelError(f"espeak-ng -v {self.voice} --ipa failed (exit {done.returncode}): {done.stderr.strip()}")
        output = [_LANGUAGE_FLAG.sub("", line).strip() for line in done.stdout.splitlines()]
        return [line for line in output if line]

    def clause_ipa(self, clauses: list[Clause]) -> list[str]:
        """The IPA of each clause's text, without its marks ("" for a clause of marks only)."""
        spoken = [c.text for c in clauses if c.text]
        lines = self._run(spoken) if spoken else []
        if len(lines) != len(spoken):  # espeak-ng cut a line: phonemize each clause alone
            lines = [" ".join(self._run([text])) for text in spoken]
        found = iter(lines)
        return [next(found) if c.text else "" for c in clauses]

    def __call__(self, text: str) -> str:
        """IPA of ``text``, clause by clause, with each clause's marks around it."""
        clauses = split_clauses(text)
        pieces = [f"{c.before}{ipa}{c.after}" for c, ipa in zip(clauses, self.clause_ipa(clauses))]
        return " ".join(piece for piece in pieces if piece)
