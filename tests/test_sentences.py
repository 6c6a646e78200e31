"""SentenceCutter: sentences out of streamed LLM text, English and Spanish."""

from __future__ import annotations

import pytest

from saraikit.core.errors import ConfigError
from saraikit.data.sentences import SentenceCutter, split_sentences

CASES = {
    "plain English": (
        "Hello there, friend. How are you today? I am fine!",
        ["Hello there, friend.", "How are you today?", "I am fine!"],
    ),
    "title abbreviations and a decimal": (
        "Dr. Smith arrived at 3.5 p.m. today. Then Mr. Jones left.",
        ["Dr. Smith arrived at 3.5 p.m. today.", "Then Mr. Jones left."],
    ),
    "e.g. before a capital": (
        "We need fruit, e.g. Apples and pears. That is all for now.",
        ["We need fruit, e.g. Apples and pears.", "That is all for now."],
    ),
    "lowercase after a period continues": (
        "Apples, pears, etc. and more fruit. Okay then.",
        ["Apples, pears, etc. and more fruit.", "Okay then."],
    ),
    "decimals and versions": (
        "Version 2.0 is out now. It costs 3.50 dollars.",
        ["Version 2.0 is out now.", "It costs 3.50 dollars."],
    ),
    "ellipsis before a capital ends, before lowercase does not": (
        "Well... I think so, yes. Wait… what is that thing?",
        ["Well... I think so, yes.", "Wait… what is that thing?"],
    ),
    "closing quote stays with its sentence": (
        'He said "Stop right now." Then he walked away.',
        ['He said "Stop right now."', "Then he walked away."],
    ),
    "initials": (
        "J. K. Rowling wrote many books. They sold well.",
        ["J. K. Rowling wrote many books.", "They sold well."],
    ),
    "newline ends a sentence without punctuation": (
        "First line without period\nSecond line here.",
        ["First line without period", "Second line here."],
    ),
    "interrobang run": (
        "You did what?! That is amazing news.",
        ["You did what?!", "That is amazing news."],
    ),
    "Spanish opening marks start sentences": (
        "Hola, ¿cómo estás? ¡Qué bueno verte! El Sr. García llegó tarde.",
        ["Hola, ¿cómo estás?", "¡Qué bueno verte!", "El Sr. García llegó tarde."],
    ),
    "Spanish question continued in lowercase": (
        "¿Vienes mañana? dijo ella con calma. Sí, claro que voy.",
        ["¿Vienes mañana? dijo ella con calma.", "Sí, claro que voy."],
    ),
    "Spanish abbreviations": (
        "Vivo en EE. UU. desde hace años. La Dra. Pérez y la Sra. Ruiz, p. ej. Ana, vinieron. Nadie más vino.",
        ["Vivo en EE. UU. desde hace años.", "La Dra. Pérez y la Sra. Ruiz, p. ej. Ana, vinieron.",
         "Nadie más vino."],
    ),
    "Spanish decimals and prices": (
        "Lo compré por $3.99 ayer. Fue barato, la verdad.",
        ["Lo compré por $3.99 ayer.", "Fue barato, la verdad."],
    ),
    "Spanish ellipsis": (
        "Pues… No lo sé todavía. Ya veremos mañana.",
        ["Pues… No lo sé todavía.", "Ya veremos mañana."],
    ),
    "text without a terminator comes out at flush": (
        "no punctuation at all here",
        ["no punctuation at all here"],
    ),
}


@pytest.mark.parametrize("text, expected", CASES.values(), ids=CASES.keys())
def test_whole_text(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize("text, expected", CASES.values(), ids=CASES.keys())
def test_character_by_character_stream_gives_the_same_sentences(text, expected):
    cutter = SentenceCutter()
    sentences = []
    for character in text:
        sentences += cutter.feed(character)
    sentences += cutter.flush()
    assert sentences == expected


def test_sentence_leaves_as_soon_as_the_next_token_arrives():
    cutter = SentenceCutter()
    assert cutter.feed("The weather is nice") == []
    assert cutter.feed(" today.") == []  # could still be "today.5" or "today. and"
    assert cutter.feed(" We") == ["The weather is nice today."]
    assert cutter.pending == " We"
    assert cutter.feed(" should go out.") == []
    assert cutter.flush() == ["We should go out."]
    assert cutter.pending == ""


def test_space_alone_is_not_enough_to_decide():
    cutter = SentenceCutter()
    assert cutter.feed("It is done. ") == []
    assert cutter.feed("and") == []  # lowercase: same sentence
    assert cutter.feed(" more. Next") == ["It is done. and more."]


def test_short_fragments_are_merged_with_the_next_sentence():
    assert split_sentences("Yes. I agree with you completely. Ok.") == ["Yes. I agree with you completely.", "Ok."]
    assert split_sentences("Sí. Estoy de acuerdo contigo.") == ["Sí. Estoy de acuerdo contigo."]


def test_min_chars_zero_cuts_every_sentence():
    assert split_sentences("Yes. No. Maybe.", min_chars=0) == ["Yes.", "No.", "Maybe."]


def test_flush_returns_nothing_for_whitespace_and_resets():
    cutter = SentenceCutter()
    assert cutter.feed("  \n ") == []
    assert cutter.flush() == []
    assert cutter.feed("Ready for the next one. Ok") == ["Ready for the next one."]


def test_cut_yields_lazily_from_a_stream():
    consumed = []

    def tokens():
        for token in ["Good", " morning", " to", " you.", " How", " are", " you?"]:
            consumed.append(token)
            yield token

    sentences = SentenceCutter().cut(tokens())
    assert next(sentences) == "Good morning to you."
    assert consumed == ["Good", " morning", " to", " you.", " How"]  # not the whole stream
    assert list(sentences) == ["How are you?"]


def test_custom_abbreviations():
    cutter = SentenceCutter(abbreviations={"Approx."})
    assert list(cutter.cut(["It weighs approx. Ten kilos. Fine by me."])) == [
        "It weighs approx. Ten kilos.", "Fine by me."
    ]
    assert split_sentences("It weighs approx. Ten kilos. Fine by me.") == [
        "It weighs approx. Ten kilos.", "Fine by me."
    ]
    assert split_sentences("Ask the Dr. Then leave at once.") == ["Ask the Dr. Then leave at once."]
    assert SentenceCutter(abbreviations=()).feed("Ask the Dr. Then leave") == ["Ask the Dr."]


def test_blank_lines_do_not_make_empty_sentences():
    assert split_sentences("First paragraph here.\n\nSecond paragraph here.") == [
        "First paragraph here.", "Second paragraph here."
    ]


@pytest.mark.parametrize("bad", [-1, 2.5, "10"])
def test_bad_min_chars(bad):
    with pytest.raises(ConfigError, match="min_chars"):
        SentenceCutter(min_chars=bad)


def test_first_clause_cuts_only_the_first_piece_at_a_comma():
    from saraikit.data.sentences import SentenceCutter

    cutter = SentenceCutter(first_clause=True)
    assert cutter.feed("Claro, he puesto una alarma") == []  # "Claro," alone is shorter than min_chars
    assert cutter.feed(", para las siete. Y ") == ["Claro, he puesto una alarma,", "para las siete."]
    assert cutter.feed("luego, otra cosa. Fin") == ["Y luego, otra cosa."]  # later pieces are whole sentences
    assert SentenceCutter(first_clause=True).feed("It costs 3,5 euros, I think. Yes") == ["It costs 3,5 euros,"]
    assert SentenceCutter().feed("Claro, he puesto una alarma, para las siete. Y") == [
        "Claro, he puesto una alarma, para las siete."]


def test_first_words_cuts_only_the_first_piece_after_n_whole_words():
    from saraikit.data.sentences import SentenceCutter

    cutter = SentenceCutter(first_words=4)
    pieces = []
    for token in ["The", " capital", " of", " France"]:
        pieces += cutter.feed(token)
    assert pieces == []  # "France" is not whole until a space follows it
    assert cutter.feed(" is Paris, a city. It") == ["The capital of France", "is Paris, a city."]
    assert cutter.feed(" is big, very big. ") == []  # later pieces are whole sentences, not clauses or words
    assert cutter.flush() == ["It is big, very big."]
    assert SentenceCutter(first_words=4).feed("Sí, claro que sí. Vale") == ["Sí, claro que sí."]  # a sentence ends first
    assert SentenceCutter(first_words=2).feed("I am a cat and ") == ["I am a cat"]  # "I am" is under min_chars
    with pytest.raises(ConfigError, match="first_words must be an int >= 0"):
        SentenceCutter(first_words=-1)


def test_pipeline_first_chunk_options_are_checked():
    from saraikit.models.stack import pipeline_options

    assert pipeline_options({"pipeline": {"first_chunk": "words"}})["first_words"] == 4
    with pytest.raises(ConfigError, match=r"first_chunk must be one of \['sentence', 'clause', 'words'\]"):
        pipeline_options({"pipeline": {"first_chunk": "syllable"}})
    with pytest.raises(ConfigError, match="first_words must be an int >= 1"):
        pipeline_options({"pipeline": {"first_chunk": "words", "first_words": 0}})
