import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from saraikit.data import datasets
from saraikit.data.datasets import Clip, Dataset, Dropped
from saraikit.core.errors import DataError


def tone(seconds=0.5, sample_rate=16000):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def write_wav(path, samples=None, sample_rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = tone(sample_rate=sample_rate) if samples is None else samples
    sf.write(path, samples, sample_rate, subtype="PCM_16")
    return path


def reasons(dataset):
    return {entry.id: entry.reason for entry in dataset.dropped}


def references(dataset):
    return {clip.id: clip.reference for clip in dataset.clips}


# --- asterisk-style sources (a small fake tree) ----------------------------------


@pytest.fixture()
def fake_asterisk(tmp_path):
    sounds = tmp_path / "sounds"
    for name in ["hola", "digits/1", "beep", "dup", "empty", "tagged", "extra"]:
        write_wav(sounds / f"{name}.wav", sample_rate=8000)
    write_wav(sounds / "silence/1.wav", np.zeros(8000, dtype=np.float32), sample_rate=8000)
    (sounds / "broken.wav").write_text("not audio")
    lines = [
        "; a comment",
        "",
        "hola: Hola, señor",
        "digits/1: uno",
        "beep: [tono simple]",
        "missing: no existe",
        "dup: a",
        "dup: b",
        "empty:",
        "tagged: Sus saludos [temporales] estan en uso",
        "broken: roto",
        "no colon here",
    ]
    transcripts = tmp_path / "core-sounds.txt.gz"
    transcripts.write_bytes(gzip.compress("\n".join(lines).encode("latin-1")))
    return sounds, transcripts


def test_asterisk_style_keeps_speech_and_explains_every_drop(fake_asterisk):
    sounds, transcripts = fake_asterisk
    dataset = datasets.asterisk_es(sounds, transcripts)
    assert dataset.name == "asterisk_es"
    assert references(dataset) == {
        "digits/1": "uno",
        "hola": "Hola, señor",
        "tagged": "Sus saludos temporales estan en uso",
    }
    assert reasons(dataset) == {
        "beep": "non-speech tag",
        "broken": "unreadable audio",
        "dup": "conflicting transcripts",
        "empty": "empty reference",
        "extra": "no transcript",
        "missing": "missing audio",
        "no colon here": "malformed line",
        "silence/1": "silent",
    }
    clip = next(clip for clip in dataset.clips if clip.id == "digits/1")
    source = "asterisk-core-sounds-es-wav"
    assert clip == Clip("digits/1", sounds / "digits/1.wav", "es", 0.5, 8000, "uno", source)
    assert dataset.notes == [f"transcripts read as latin-1 from {transcripts}"]


def test_asterisk_style_reads_utf8_and_records_it(fake_asterisk):
    sounds, transcripts = fake_asterisk
    transcripts.write_bytes(gzip.compress("hola: Hola, señor\n".encode("utf-8")))
    dataset = datasets.asterisk_es(sounds, transcripts)
    assert references(dataset) == {"hola": "Hola, señor"}
    assert dataset.notes == [f"transcripts read as utf-8 from {transcripts}"]


def test_missing_debian_packages_are_named(fake_asterisk, tmp_path):
    sounds, transcripts = fake_asterisk
    with pytest.raises(DataError, match="apt-get install asterisk-core-sounds-es-wav"):
        datasets.asterisk_es(tmp_path / "nope", transcripts)
    with pytest.raises(DataError, match=r"\(sudo apt-get install asterisk-core-sounds-es\)"):
        datasets.asterisk_es(sounds, tmp_path / "nope.txt.gz")
    with pytest.raises(DataError, match="apt-get install pocketsphinx-testdata"):
        datasets.librivox_en(tmp_path)
    with pytest.raises(DataError, match="apt-get install pocketsphinx-testdata"):
        datasets.cards_en(tmp_path)


def test_sphinx_style_transcription(tmp_path):
    folder = tmp_path / "cards"
    for name in ["001", "002", "004"]:
        write_wav(folder / f"{name}.wav")
    (folder / "cards.transcription").write_text(
        "<s> ten of clubs  </s> (001)\n"
        "<s> four queen of clubs </s> (002)\n"
        "<s> seven of clubs </s> (003)\n"
        "garbage\n"
    )
    dataset = datasets.cards_en(tmp_path)
    assert references(dataset) == {"001": "ten of clubs", "002": "four queen of clubs"}
    assert reasons(dataset) == {
        "003": "missing audio",
        "004": "no transcript",
        "garbage": "malformed line",
    }
    assert {clip.language for clip in dataset.clips} == {"en"}


# --- user manifests ----------------------------------------------------------------


@pytest.fixture()
def audio_folder(tmp_path):
    folder = tmp_path / "data"
    write_wav(folder / "good.wav")
    write_wav(folder / "sub/other.wav", tone(1.0, 8000), sample_rate=8000)
    write_wav(folder / "silent.wav", np.zeros(16000, dtype=np.float32))
    write_wav(folder / "empty.wav", np.zeros(0, dtype=np.float32))
    (folder / "fake.wav").write_text("I am text")
    return folder


EXPECTED_MANIFEST_REASONS = {
    "missing": "missing audio",
    "fake": "unreadable audio",
    "empty": "empty audio",
    "silent": "silent",
    "noref": "empty reference",
    "nolang": "missing language",
    "badlang": "unknown language",
    "good": "duplicate id",
    "": "missing path",
}


def manifest_rows(folder):
    return [
        {"id": "good", "path": "good.wav", "reference": "hello world", "language": "en"},
        {"id": "", "path": str(folder / "sub/other.wav"), "reference": "hola", "language": "ES"},
        {"id": "missing", "path": "nope.wav", "reference": "x", "language": "en"},
        {"id": "fake", "path": "fake.wav", "reference": "x", "language": "en"},
        {"id": "empty", "path": "empty.wav", "reference": "x", "language": "en"},
        {"id": "silent", "path": "silent.wav", "reference": "x", "language": "en"},
        {"id": "noref", "path": "good.wav", "reference": "  ", "language": "en"},
        {"id": "nolang", "path": "good.wav", "reference": "x", "language": ""},
        {"id": "badlang", "path": "good.wav", "reference": "x", "language": "english"},
        {"id": "good", "path": "good.wav", "reference": "again", "language": "en"},
        {"id": "", "path": "", "reference": "x", "language": "en"},
    ]


def summary(clip):
    return clip.reference, clip.language, clip.duration_s, clip.sample_rate


def check_manifest_dataset(dataset, folder):
    assert [clip.id for clip in dataset.clips] == ["good", str(folder / "sub/other.wav")]
    good, other = dataset.clips
    assert good.path == folder / "good.wav"  # relative to the manifest's folder
    assert summary(good) == ("hello world", "en", 0.5, 16000)
    assert summary(other) == ("hola", "es", 1.0, 8000)
    assert reasons(dataset) == EXPECTED_MANIFEST_REASONS
    assert len(dataset.dropped) == 9
    assert all(entry.reason for entry in dataset.dropped)


def test_csv_manifest_reports_each_bad_row(audio_folder):
    path = audio_folder / "mine.csv"

    pd.DataFrame(manifest_rows(audio_folder)).to_csv(path, index=False)
    dataset = datasets.load(path)
    assert dataset.name == "mine"
    check_manifest_dataset(dataset, audio_folder)
    assert {clip.source for clip in dataset.clips} == {str(path)}


def test_jsonl_manifest_reports_each_bad_row(audio_folder):
    path = audio_folder / "mine.jsonl"
    rows = manifest_rows(audio_folder)
    del rows[7]["language"]  # a missing key is a missing value
    rows[6]["reference"] = None
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n")
    check_manifest_dataset(datasets.load(path), audio_folder)


def test_manifest_without_id_column_uses_the_path(audio_folder):
    path = audio_folder / "m.csv"
    path.write_text("path,reference,language\ngood.wav,hello,en\n")
    assert [clip.id for clip in datasets.read_manifest(path).clips] == ["good.wav"]


def test_unknown_column_is_rejected(audio_folder):
    path = audio_folder / "m.csv"
    path.write_text("path,reference,language,speaker\ngood.wav,hello,en,bob\n")
    message = r"unknown columns \['speaker'\]; allowed: id, path, reference, language"
    with pytest.raises(DataError, match=message):
        datasets.load(path)
    jsonl = audio_folder / "m.jsonl"
    jsonl.write_text('{"path": "good.wav", "reference": "hi", "language": "en", "text": "hi"}\n')
    with pytest.raises(DataError, match=r"unknown columns \['text'\]"):
        datasets.load(jsonl)


def test_missing_language_column_names_the_columns_found(audio_folder):
    path = audio_folder / "m.csv"
    path.write_text("path,reference\ngood.wav,hello\n")
    with pytest.raises(DataError, match=r"missing columns \['language'\]; found: path, reference"):
        datasets.load(path)


def test_unparseable_manifests_are_errors(audio_folder):
    jsonl = audio_folder / "m.jsonl"
    jsonl.write_text('{"path": "good.wav", "reference": "hi", "language": "en"}\n{oops\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        datasets.load(jsonl)
    jsonl.write_text('["good.wav", "hi", "en"]\n')
    with pytest.raises(DataError, match="line 1 is not a JSON object"):
        datasets.load(jsonl)
    header_only = audio_folder / "h.csv"
    header_only.write_text("path,reference,language\n")
    with pytest.raises(DataError, match="no rows"):
        datasets.load(header_only)
    other = audio_folder / "m.txt"
    other.write_text("path,reference,language\n")
    with pytest.raises(DataError, match="use .csv or .jsonl"):
        datasets.load(other)


def test_load_unknown_name(tmp_path):
    message = r"neither a built-in dataset \(asterisk_es, librivox_en, cards_en\)"
    with pytest.raises(DataError, match=message):
        datasets.load("no_such_set")


# --- writing, filtering, reporting ------------------------------------------------------


@pytest.fixture()
def small_dataset(tmp_path):
    clips = []
    lengths_and_languages = [(0.5, "en"), (1.0, "es"), (1.5, "en"), (2.0, "en"), (2.5, "es")]
    for i, (seconds, language) in enumerate(lengths_and_languages):
        path = write_wav(tmp_path / f"c{i}.wav", tone(seconds))
        clips.append(Clip(f"c{i}", path, language, seconds, 16000, f"frase número {i}", "test"))
    dropped = [
        Dropped("x", None, "silent"),
        Dropped("y", None, "silent"),
        Dropped("z", None, "no transcript"),
    ]
    return Dataset("small", clips, dropped)


def test_write_manifest_round_trips(small_dataset, tmp_path):
    out = tmp_path / "out" / "small.jsonl"
    assert datasets.write_manifest(small_dataset, out) == out
    assert "número" in out.read_text(encoding="utf-8")
    assert [p.name for p in out.parent.iterdir()] == ["small.jsonl"]  # no temp file left
    loaded = datasets.load(out)
    assert loaded.dropped == []
    assert [(c.id, c.path, *summary(c)) for c in loaded.clips] == [
        (c.id, c.path, *summary(c)) for c in small_dataset.clips
    ]


def test_write_manifest_replaces_and_cleans_up_on_failure(small_dataset, tmp_path, monkeypatch):
    out = tmp_path / "m.jsonl"
    out.write_text("old\n")
    datasets.write_manifest(Dataset("one", small_dataset.clips[:1], []), out)
    assert len(out.read_text().splitlines()) == 1

    def fail(*args):
        raise OSError("disk full")

    from saraikit.core import io as atomic_io  # manifests are written through the one atomic write

    monkeypatch.setattr(atomic_io.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        datasets.write_manifest(small_dataset, out)
    assert len(out.read_text().splitlines()) == 1  # the old manifest is intact
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_filter(small_dataset):
    ids = lambda dataset: [clip.id for clip in dataset.clips]  # noqa: E731
    assert ids(datasets.filter(small_dataset, language="es")) == ["c1", "c4"]
    assert ids(datasets.filter(small_dataset, max_duration_s=1.5)) == ["c0", "c1", "c2"]
    assert ids(datasets.filter(small_dataset, min_duration_s=1.5, language="en")) == ["c2", "c3"]
    assert ids(datasets.filter(small_dataset, limit=2)) == ["c0", "c2"]  # evenly spaced
    assert ids(datasets.filter(small_dataset, limit=3)) == ["c0", "c1", "c3"]
    assert ids(datasets.filter(small_dataset, limit=10)) == ["c0", "c1", "c2", "c3", "c4"]
    assert ids(datasets.filter(small_dataset, limit=0)) == []
    subset = datasets.filter(small_dataset, language="en", limit=1)
    assert subset.notes == ["filtered (language=en, limit=1): 1 of 5 clips"]
    assert subset.dropped == small_dataset.dropped
    assert len(small_dataset.clips) == 5  # the original is untouched


def test_filter_rejects_bad_bounds(small_dataset):
    with pytest.raises(DataError, match="limit must be 0 or more"):
        datasets.filter(small_dataset, limit=-1)
    with pytest.raises(DataError, match="min_duration_s 2 is above max_duration_s 1"):
        datasets.filter(small_dataset, min_duration_s=2, max_duration_s=1)


def test_frame_counts_and_summary(small_dataset):
    frame = small_dataset.to_frame()
    columns = ["id", "path", "language", "duration_s", "sample_rate", "reference", "source"]
    assert list(frame.columns) == columns
    assert len(frame) == 5
    assert frame["path"].map(type).eq(str).all()
    assert small_dataset.dropped_counts() == {"silent": 2, "no transcript": 1}
    assert small_dataset.summary().splitlines() == [
        "small: 5 clips, 0.1 min, language en, es, 16000 Hz; dropped 3",
        "  dropped, silent: 2",
        "  dropped, no transcript: 1",
    ]
    empty = Dataset("none", [], [])
    assert list(empty.to_frame().columns) == list(frame.columns)
    assert empty.summary() == "none: 0 clips, 0.0 min, language -, - Hz; dropped 0"


# --- the real Debian data -------------------------------------------------------------


@pytest.mark.integration
def test_asterisk_es_real_data():
    dataset = datasets.load("asterisk_es")
    assert len(dataset.clips) == 476
    assert dataset.dropped_counts() == {
        "no transcript": 32,
        "silent": 10,
        "non-speech tag": 6,
        "missing audio": 4,
        "empty reference": 2,
        "conflicting transcripts": 1,
    }
    by_reason = {}
    for entry in dataset.dropped:
        by_reason.setdefault(entry.reason, set()).add(entry.id)
    assert by_reason["non-speech tag"] == {
        "ascending-2tone", "beep", "beeperr", "confbridge-join", "descending-2tone", "tt-monkeys"
    }
    assert by_reason["missing audio"] == {
        "confbridge-lock-out-0", "digits/1f", "digits/1m", "digits/21-and"
    }
    assert by_reason["empty reference"] == {"dir-usingkeypad", "dir-welcome"}
    assert by_reason["conflicting transcripts"] == {"digits/0"}
    assert by_reason["silent"] == {f"silence/{n}" for n in range(1, 11)}

    refs = references(dataset)
    assert refs["auth-thankyou"] == "Gracias"
    assert refs["dictate/pause"] == "pausa"
    assert refs["digits/1"] == "uno"
    assert refs["vm-tempgreetactive"] == "Sus saludos temporales estan actualmente en uso"
    assert refs["conf-now-muted"] == "La conferencia está ahora en modo mudo."
    assert {clip.sample_rate for clip in dataset.clips} == {8000}
    assert {clip.language for clip in dataset.clips} == {"es"}
    assert min(clip.duration_s for clip in dataset.clips) > 0.3
    assert all(Path(clip.path).is_file() for clip in dataset.clips)
    assert dataset.notes == [f"transcripts read as utf-8 from {datasets.ASTERISK_TRANSCRIPTS}"]


@pytest.mark.integration
def test_librivox_en_real_data():
    dataset = datasets.load("librivox_en")
    assert len(dataset.clips) == 5
    assert dataset.dropped == []
    refs = references(dataset)
    clip_id = "sense_and_sensibility_01_austen_64kb-{}".format
    assert refs[clip_id("0880")] == "he was not an ill disposed young man"
    assert refs[clip_id("0930")] == "he might even have been made amiable himself"
    assert {clip.sample_rate for clip in dataset.clips} == {16000}
    assert all(clip.duration_s > 1 for clip in dataset.clips)


@pytest.mark.integration
def test_cards_en_real_data():
    dataset = datasets.load("cards_en")
    assert [clip.id for clip in dataset.clips] == ["001", "002", "003", "004", "005"]
    assert dataset.dropped == []
    refs = references(dataset)
    assert refs["001"] == "ten of clubs"
    assert refs["005"] == "eight of spades four of clubs seven of hearts"
    assert {clip.sample_rate for clip in dataset.clips} == {16000}
    assert all(clip.duration_s > 0.5 for clip in dataset.clips)


@pytest.mark.integration
def test_default_datasets_and_round_trip(tmp_path):
    built = datasets.default_datasets()
    assert {name: len(dataset.clips) for name, dataset in built.items()} == {
        "asterisk_es": 476,
        "librivox_en": 5,
        "cards_en": 5,
    }
    subset = datasets.filter(built["asterisk_es"], max_duration_s=2.0, limit=20)
    assert len(subset.clips) == 20
    assert all(clip.duration_s <= 2.0 for clip in subset.clips)
    loaded = datasets.load(datasets.write_manifest(subset, tmp_path / "subset.jsonl"))
    assert references(loaded) == references(subset)
