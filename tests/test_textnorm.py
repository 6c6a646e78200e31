import re

import pytest

from saraikit.core.errors import ConfigError, DataError
from saraikit.data.textnorm import normalize, strip_accents


@pytest.mark.parametrize(
    "text, language, expected",
    [
        # numbers become words, so digits and spelled numbers agree
        ("marque 5", "es", "marque cinco"),
        ("press 5", "en", "press five"),
        ("Marque 21 o 100", "es", "marque veintiuno o cien"),
        ("1,234 people", "en", "one thousand two hundred and thirty four people"),
        ("1.000.000 y 1,234", "es", "un millon y mil doscientos treinta y cuatro"),
        ("3.5 and 1.50", "en", "three point five and one point five zero"),
        ("28.8 Kb o 3,5", "es", "veintiocho punto ocho kb o tres coma cinco"),
        ("5% off", "en", "five percent off"),
        ("el 5 %", "es", "el cinco por ciento"),
        ("the 1st and 22nd", "en", "the first and twenty second"),
        ("el 1º y la 3ª", "es", "el primero y la tercera"),
        ("h323", "es", "h trescientos veintitres"),
        # punctuation, including Spanish and typographic marks
        ("¿Dónde está? ¡Aquí!", "es", "donde esta aqui"),
        ("«Hola» — dijo… mundo", "es", "hola dijo mundo"),
        ('He said: "stop"; then, left...', "en", "he said stop then left"),
        # bracketed non-speech tags go with their content
        ("[tono] Marque (beep) ahora", "es", "marque ahora"),
        ("[MUSIC] hello (laughs)", "en", "hello"),
        # hyphens split words; English contractions keep their apostrophe
        ("X-Ray intra-Asterisk", "es", "x ray intra asterisk"),
        ("I don't know, it's Bob's", "en", "i don't know it's bob's"),
        ("don\u2019t \u2018quote\u2019 dogs'", "en", "don't quote dogs"),
        # titles written as abbreviations (the LibriVox reference says "mister")
        ("And Mr. John Dashwood", "en", "and mister john dashwood"),
        ("Dr. Smith drives", "en", "doctor smith drives"),
        ("La Sra. López y el Dr. Pérez", "es", "la senora lopez y el doctor perez"),
        # whitespace
        ("  many \t  spaces\n here ", "en", "many spaces here"),
    ],
)
def test_normalize_cases(text, language, expected):
    assert normalize(text, language) == expected


def test_spanish_folds_accents_by_default_so_unaccented_references_match():
    # The Asterisk references are written without accents; STT output has them.
    assert normalize("Contraseña incorrecta. Número", "es") == "contrasena incorrecta numero"
    assert normalize("Contrasena incorrecta. Numero", "es") == normalize("Contraseña incorrecta. Número", "es")
    assert normalize("número", "es", fold_accents=False) == "número"


def test_english_keeps_accents_unless_asked():
    assert normalize("Café naïve", "en") == "café naïve"
    assert normalize("Café naïve", "en", fold_accents=True) == "cafe naive"
    assert strip_accents("ñandú Über") == "nandu Uber"


def test_numbers_can_be_left_as_digits():
    assert normalize("Marque 5, por favor.", "es", numbers=False) == "marque 5 por favor"


def test_text_that_is_only_a_tag_or_punctuation_normalizes_to_nothing():
    assert normalize("[tono simple]", "es") == ""
    assert normalize("...", "en") == ""


def test_very_long_digit_strings_are_read_digit_by_digit():
    assert normalize("1234567890123456", "en") == "one two three four five six seven eight nine zero one two three four five six"


def test_bad_input_names_what_is_wrong():
    with pytest.raises(ConfigError, match="language 'fr'"):
        normalize("bonjour", "fr")
    with pytest.raises(DataError, match="must be a str, got int"):
        normalize(5, "en")


@pytest.mark.integration
def test_every_real_reference_normalizes_to_plain_words():
    from saraikit.data.datasets import default_datasets

    for dataset in default_datasets().values():
        for clip in dataset.clips:
            text = normalize(clip.reference, clip.language)
            assert text, f"{dataset.name}/{clip.id}: {clip.reference!r} normalized to nothing"
            allowed = r"[a-z' ]+" if clip.language == "en" else r"[a-z ]+"
            assert re.fullmatch(allowed, text), f"{dataset.name}/{clip.id}: {text!r}"
            assert "  " not in text
