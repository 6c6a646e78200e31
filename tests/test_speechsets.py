"""The `datasets` parameter: built-in sets and a user's own manifest, by name or path."""

import pytest

from saraikit.core.errors import ConfigError
from saraikit.data import datasets
from saraikit.experiments import e2e, speechsets

CLIP = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"


def _manifest(tmp_path, name="my_recordings.csv"):
    path = tmp_path / name
    path.write_text("id,path,reference,language\n"
                    f"mine-1,{CLIP},\"I'm going to take him to the cottage\",en\n"
                    f"mine-2,{tmp_path / 'missing.wav'},hello,en\n")
    return path


def test_a_user_manifest_is_a_set_named_after_its_file_beside_a_built_in_one(tmp_path):
    sets = speechsets.load_sets(["cards_en", _manifest(tmp_path)])
    assert list(sets) == ["cards_en", "my_recordings"]
    mine = sets["my_recordings"]
    assert [u.id for u in mine] == ["mine-1"] and mine[0].samples.dtype.name == "float32"  # the missing file dropped
    assert mine[0].duration_s == pytest.approx(datasets.load(_manifest(tmp_path)).clips[0].duration_s, abs=0.01)
    grouped = speechsets.by_language(sets)
    assert list(grouped) == ["en"] and len(grouped["en"]) == len(sets["cards_en"]) + 1


def test_asterisk_takes_the_evaluation_half_and_names_are_checked(tmp_path):
    sets = speechsets.load_sets("asterisk_es", n_spanish=4)
    assert len(sets["asterisk_es"]) == 4 and {u.language for u in sets["asterisk_es"]} == {"es"}
    with pytest.raises(ConfigError, match="named twice"):
        speechsets.load_sets(["cards_en", "cards_en"])
    with pytest.raises(ConfigError, match="at least one"):
        speechsets.load_sets([])
    with pytest.raises(Exception, match="neither a built-in dataset"):
        speechsets.load_sets([tmp_path / "nope.csv"])


def test_the_pipeline_utterances_come_from_a_manifest_too(tmp_path):
    picked = e2e.pick_utterances(5, min_s=0.5, max_s=30, sets=(str(_manifest(tmp_path)),))
    assert [c.id for c in picked] == ["mine-1"]
