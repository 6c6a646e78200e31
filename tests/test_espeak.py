"""The espeak-ng baseline voice."""

from __future__ import annotations

import pytest

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.audio import rms_dbfs
from saraikit.engines.espeak import EspeakTTS

from stage_helpers import assert_well_formed


def test_espeak_missing_executable_names_the_debian_package():
    stage = EspeakTTS("en", executable="espeak-ng-not-installed-here")
    with pytest.raises(ModelError, match="Debian package espeak-ng"):
        stage.load()


def test_constructor_checks():
    with pytest.raises(ConfigError, match="rate"):
        EspeakTTS("en", rate=10)


@pytest.mark.integration
@pytest.mark.parametrize("voice, text", [("en", "Good morning. How are you today?"),
                                         ("es", "Buenos días. ¿Cómo estás hoy, amigo?")])
def test_espeak_speaks_english_and_spanish(voice, text):
    stage = EspeakTTS(voice)
    stage.load()
    result = stage.run(text)
    audio = result.value
    assert audio.sample_rate == 22050
    assert 1.0 <= len(audio.samples) / audio.sample_rate <= 6.0
    assert rms_dbfs(audio) > -40
    assert result.meta["sentences"] == 2
    assert [e.name for e in result.events] == ["start", "first_output", "output", "end"]
    assert_well_formed(result, stage.name)


@pytest.mark.integration
def test_espeak_unknown_voice_fails_at_load():
    with pytest.raises(ModelError, match="espeak-ng -v xx-nope failed"):
        EspeakTTS("xx-nope").load()
