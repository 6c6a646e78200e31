"""Text normalisation for word and character error rates.

``normalize(text, language)`` turns a reference or a transcript into
lower-case words separated by single spaces, so that WER counts recognition
errors and not differences of spelling convention.  The same function must be
applied to both sides of every comparison.

Steps, in order (each one is a short function below):

1. Unicode NFC; curly apostrophes become ``'``; dashes (``–``, ``—``, ``−``)
   become ``-``.
2. Bracketed non-speech tags are removed with their content: ``[tono]``,
   ``(beep)``, ``[MUSIC]``.  (The datasets drop references that are *only* a
   tag and keep the words of the one reference with a bracketed spoken word,
   so by the time text reaches here a bracket means "not speech".)
3. Lower case.
4. Numbers to words with ``num2words`` (``numbers=True``), so "5" == "cinco"
   == "five":

   - thousands separators: ``1,234`` (English and Mexican Spanish) and
     ``1.234`` (Spanish) when every group after the first has exactly three
     digits;
   - decimals: ``3.5`` -> "three point five"; Spanish reads the separator as
     written (``3.5`` -> "tres punto cinco", ``3,5`` -> "tres coma cinco",
     Mexico writes and says "punto"); fractional digits are read one by one so
     ``1.50`` keeps its zero ("one point five zero");
   - ordinals: English ``1st 2nd 3rd 4th``; Spanish ``1º`` (masculine) and
     ``1ª`` (feminine: "primera"), with an optional dot (``1.º``);
   - ``%`` -> "percent" / "por ciento";
   - every other digit run -> its cardinal ("1234" -> "one thousand, two
     hundred and thirty-four"), runs longer than 15 digits digit by digit.

   Known limits, kept on purpose because both sides are treated alike: a
   Spanish "1" is always "uno" (never "un"/"una"), years are cardinals
   ("1990" -> "one thousand, nine hundred and ninety"), digit strings such as
   phone numbers are one cardinal, and English cardinals carry num2words'
   "and".  A transcript that spells a number differently from num2words
   ("one thousand two hundred thirty four") still counts an error.
5. Titles written as abbreviations are spelled out: English ``mr mrs dr
   prof`` -> "mister missus doctor professor" (the LibriVox reference says
   "mister", Whisper writes "Mr."), Spanish ``sr sra srta dr dra ud uds``
   -> "señor señora señorita doctor doctora usted ustedes".  Only these
   common ones ("dr" is read "doctor", never "drive"); "st" (saint or
   street) and "ms" are left alone.
6. Hyphens become spaces ("x-ray" -> "x ray", "twenty-one" -> "twenty one").
7. Punctuation and symbols (Unicode categories P* and S*, which include
   ``¿¡«»…`` and ``♪``) become spaces.  In English an apostrophe between
   two letters is kept ("don't", "o'clock"); other apostrophes go.
8. Accent folding (``fold_accents``): NFKD, drop combining marks.  This also
   folds ``ñ`` to ``n``.  The default (``None``) depends on the language:
   Spanish folds, because the Asterisk references are written without accents
   ("numero", "contrasena") while STT output has them ("número",
   "contraseña"); folding only one side would count every accent as an error.
   English does not fold by default.
9. Whitespace is collapsed.

Only English (``en``) and Spanish (``es``) are supported: the number, ordinal
and apostrophe rules are language-specific.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

from saraikit.core.errors import ConfigError, DataError

__all__ = ["SUPPORTED_LANGUAGES", "normalize", "strip_accents"]

SUPPORTED_LANGUAGES = ("en", "es")

# Language defaults for accent folding (see step 8 in the module docstring).
FOLD_ACCENTS_BY_DEFAULT = {"en": False, "es": True}

PERCENT_WORD = {"en": "percent", "es": "por ciento"}
DECIMAL_WORD = {"en": {".": "point"}, "es": {".": "punto", ",": "coma"}}
MAX_CARDINAL_DIGITS = 15

TITLES = {
    "en": {"mr": "mister", "mrs": "missus", "dr": "doctor", "prof": "professor"},
    "es": {"sr": "señor", "sra": "señora", "srta": "señorita", "dr": "doctor", "dra": "doctora",
           "ud": "usted", "uds": "ustedes"},
}
_TITLE = {language: re.compile(r"\b(" + "|".join(words) + r")\b\.?") for language, words in TITLES.items()}

_TAG = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-"})
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})

_THOUSANDS = {
    "en": re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,]|\.\d{3})"),
    "es": re.compile(r"(?<![\d.,])\d{1,3}(?:(?:,\d{3})+|(?:\.\d{3})+)(?![\d])(?![.,]\d{3})"),
}
_DECIMAL = {"en": re.compile(r"(\d+)\.(\d+)"), "es": re.compile(r"(\d+)([.,])(\d+)")}
_ORDINAL = {
    "en": re.compile(r"(\d+)(?:st|nd|rd|th)\b"),
    "es": re.compile(r"(\d+)\.?([ºª])"),
}
_DIGITS = re.compile(r"\d+")
_ORPHAN_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def _check_language(language: str) -> str:
    if language not in SUPPORTED_LANGUAGES:
        raise ConfigError(
            f"language {language!r} is not supported by the normalizer; "
            f"use one of {', '.join(SUPPORTED_LANGUAGES)}"
        )
    return language


def _cardinal(digits: str, language: str) -> str:
    if len(digits) > MAX_CARDINAL_DIGITS:
        return " ".join(num2words(int(d), lang=language) for d in digits)
    return num2words(int(digits), lang=language)


def _spaced(words: str) -> str:
    # Digits glued to letters ("h323") must become separate words.
    return f" {words} "


def _ordinal(match: re.Match, language: str) -> str:
    words = num2words(int(match.group(1)), to="ordinal", lang=language)
    if language == "es" and match.group(2) == "ª":
        words = re.sub(r"o\b", "a", words)  # primero -> primera, vigésimo tercero -> vigésima tercera
    return _spaced(words)


def _decimal(match: re.Match, language: str) -> str:
    whole, separator, fraction = (match.group(1), ".", match.group(2)) if language == "en" else match.groups()
    point = DECIMAL_WORD[language][separator]
    fraction_words = " ".join(num2words(int(d), lang=language) for d in fraction)
    return _spaced(f"{_cardinal(whole, language)} {point} {fraction_words}")


def _numbers_to_words(text: str, language: str) -> str:
    text = _THOUSANDS[language].sub(lambda m: re.sub(r"[.,]", "", m.group(0)), text)
    text = text.replace("%", f" {PERCENT_WORD[language]} ")
    text = _ORDINAL[language].sub(lambda m: _ordinal(m, language), text)
    text = _DECIMAL[language].sub(lambda m: _decimal(m, language), text)
    return _DIGITS.sub(lambda m: _spaced(_cardinal(m.group(0), language)), text)


def _strip_punctuation(text: str, keep_inner_apostrophes: bool) -> str:
    kept = []
    for char in text:
        if char == "'" and keep_inner_apostrophes:
            kept.append(char)
        elif unicodedata.category(char)[0] in "PS":
            kept.append(" ")
        else:
            kept.append(char)
    text = "".join(kept)
    if keep_inner_apostrophes:
        text = _ORPHAN_APOSTROPHE.sub(" ", text)
    return text


def strip_accents(text: str) -> str:
    """``"número contraseña"`` -> ``"numero contrasena"`` (drops every combining mark)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def normalize(text: str, language: str, fold_accents: bool | None = None, numbers: bool = True) -> str:
    """Lower-case words separated by single spaces (see the module docstring).

    ``fold_accents=None`` uses the language default: True for Spanish, False
    for English.  ``numbers=False`` leaves digits as they are.  Returns ""
    when nothing speakable is left (for example ``"[tono]"`` or ``"..."``).
    """
    if not isinstance(text, str):
        raise DataError(f"text to normalize must be a str, got {type(text).__name__}: {text!r}")
    language = _check_language(language)
    fold = FOLD_ACCENTS_BY_DEFAULT[language] if fold_accents is None else fold_accents

    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES).translate(_DASHES)
    text = _TAG.sub(" ", text)
    text = text.lower()
    if numbers:
        text = _numbers_to_words(text, language)
    text = _TITLE[language].sub(lambda m: f" {TITLES[language][m.group(1)]} ", text)
    text = text.replace("-", " ")
    text = _strip_punctuation(text, keep_inner_apostrophes=language == "en")
    if fold:
        text = strip_accents(text)
    return " ".join(text.split())
