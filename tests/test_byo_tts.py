"""Bring your own TTS: a user's Stage class built from a stack dict, by import path or by a registered name."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError
from saraikit.data.audio import rms_dbfs
from saraikit.engines import build
from saraikit.engines.build import build_stage, register_engine
from saraikit.engines.espeak import EspeakTTS
from saraikit.engines.ort import OrtConfig
from saraikit.models.stack import ENGINES, validate_stack

from stage_helpers import assert_well_formed
from user_tts import PitchedEspeakTTS

STACK = {"stages": {"tts": {"model": "my-voice", "engine": "user_tts:PitchedEspeakTTS", "language": "es",
                            "settings": {"pitch": 30}}}}


@pytest.fixture()
def clean_registry():
    """Registrations made by a test are undone after it."""
    before = {kind: dict(engines) for kind, engines in build.BUILDERS.items()}
    names = set(ENGINES)
    yield
    for kind, engines in before.items():
        build.BUILDERS[kind].clear()
        build.BUILDERS[kind].update(engines)
    ENGINES.intersection_update(names)


def test_user_engine_by_import_path_is_built_from_a_stack_and_speaks(clean_registry):
    validate_stack(STACK)  # the import form passes stack validation
    stage = build_stage("tts", STACK["stages"]["tts"])
    assert isinstance(stage, PitchedEspeakTTS)
    assert (stage.name, stage.voice, stage.pitch) == ("my-voice", "es", 30)  # language -> voice, settings -> options
    stage.load()
    result = stage.run("Hola, buenos días.\nHasta luego.")
    audio = result.value
    assert audio.sample_rate == 22050 and audio.samples.dtype == np.float32
    assert 1.0 <= len(audio.samples) / audio.sample_rate <= 5.0 and rms_dbfs(audio) > -40
    assert [e.name for e in result.events] == ["start", "first_output", "output", "end"]
    assert result.meta["sentences"] == 2
    assert_well_formed(result, "my-voice")


def test_user_engine_pitch_changes_the_audio(clean_registry):
    spec = dict(STACK["stages"]["tts"])
    low = build_stage("tts", spec)
    high = build_stage("tts", {**spec, "settings": {"pitch": 90}})
    for stage in (low, high):
        stage.load()
    a, b = low.run("Buenos días").value.samples, high.run("Buenos días").value.samples
    assert len(a) != len(b) or not np.array_equal(a, b)


def test_registered_name_works_in_a_stack_and_in_validation(clean_registry):
    register_engine("tts", "pitched-espeak", PitchedEspeakTTS)
    stack = {"stages": {"tts": {"model": "m", "engine": "pitched-espeak", "settings": {"voice": "en-us"}}}}
    validate_stack(stack)
    stage = build_stage("tts", stack["stages"]["tts"])
    assert isinstance(stage, PitchedEspeakTTS) and (stage.voice, stage.pitch) == ("en-us", 70)
    register_engine("tts", "pitched-espeak", PitchedEspeakTTS)  # registering again replaces, no error
    assert build.BUILDERS["tts"]["pitched-espeak"][0] is PitchedEspeakTTS


def test_registered_engine_with_a_config_class_takes_its_keys_as_settings(clean_registry):
    class OrtVoice(PitchedEspeakTTS):
        def __init__(self, model, config, name=None, voice="en", pitch=50):
            super().__init__(model, name, voice=voice, pitch=pitch)
            self.config = config

    register_engine("tts", "ort-voice", OrtVoice, OrtConfig)
    assert build.engine_entry("tts", "ort-voice")[:2] == (OrtVoice, OrtConfig)
    assert build.engine_entry("tts", "kokoro")[1] is OrtConfig and build.engine_entry("tts", None)[1] is OrtConfig
    stage = build_stage("tts", {"model": "m", "engine": "ort-voice",
                                "settings": {"intra_op_num_threads": 1, "pitch": 40}})
    assert stage.config == OrtConfig(intra_op_num_threads=1) and stage.pitch == 40
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['speed'\]; valid: .*'intra_op_num_threads'.*'pitch'"):
        build_stage("tts", {"model": "m", "engine": "ort-voice", "settings": {"speed": 2}})


def test_bad_registrations_and_import_paths_say_what_is_wrong(clean_registry):
    with pytest.raises(ConfigError, match="not a subclass of saraikit.engines.stage.Stage"):
        register_engine("tts", "x", dict)
    with pytest.raises(ConfigError, match=r"PitchedEspeakTTS.kind is 'tts', not 'stt'"):
        register_engine("stt", "x", PitchedEspeakTTS)
    with pytest.raises(ConfigError, match="not a built-in tts engine"):
        register_engine("tts", "kokoro", PitchedEspeakTTS)
    with pytest.raises(ConfigError, match="unknown stage kind 'asr'"):
        register_engine("asr", "x", PitchedEspeakTTS)
    with pytest.raises(ConfigError, match="cannot import 'no_such_module'"):
        build_stage("tts", {"model": "m", "engine": "no_such_module:Voice"})
    with pytest.raises(ConfigError, match="module 'user_tts' has no 'Nope'"):
        build_stage("tts", {"model": "m", "engine": "user_tts:Nope"})
    with pytest.raises(ConfigError, match="EspeakTTS.kind is 'tts', not 'llm'"):
        build_stage("llm", {"model": "m", "engine": "saraikit.engines.espeak:EspeakTTS"})
    with pytest.raises(ConfigError, match="engine 'my tts' is not one of .* nor a stage class of your own"):
        validate_stack({"stages": {"tts": {"model": "m", "engine": "my tts"}}})


def test_a_built_in_class_by_import_path_gets_the_generic_contract(clean_registry):
    # EspeakTTS's constructor has no `model` parameter: the error names the class and the contract
    with pytest.raises(ConfigError, match=r"EspeakTTS\(model, name\) failed: .*must take model, name"):
        build_stage("tts", {"model": "m", "engine": "saraikit.engines.espeak:EspeakTTS"})
    assert EspeakTTS.kind == "tts"
