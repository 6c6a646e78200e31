"""Building stages from stack dicts: engines, settings, model names."""

from __future__ import annotations

import pytest

from saraikit.core.errors import ConfigError
from saraikit.engines.build import build_stage
from saraikit.engines.espeak import EspeakTTS
from saraikit.engines.llm_stage import LlamaLLM
from saraikit.engines.piper import PiperTTS
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.vad import SileroVAD
from saraikit.engines.whisper import FasterWhisperSTT
from saraikit.models.stack import load_stack


def test_build_stage_rejects_unknown_kind_engine_and_settings(tmp_path):
    with pytest.raises(ConfigError, match=r"valid engines for stt: \['ctranslate2', 'moonshine', 'whisper-onnx'\]"):
        build_stage("stt", {"model": "whisper-base", "engine": "whisper.cpp"})
    with pytest.raises(ConfigError, match=r"valid engines for tts: \['espeak-ng', 'kokoro', 'onnxruntime', 'piper'\]"):
        build_stage("tts", {"model": "x", "engine": "coqui"})
    with pytest.raises(ConfigError, match="unknown stage kind 'asr'"):
        build_stage("asr", {"model": "x"})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['thresold'\]; valid: .*'threshold'"):
        build_stage("vad", {"model": str(tmp_path), "settings": {"thresold": 0.3}})


def test_build_stage_espeak_takes_the_voice_from_language_or_settings():
    stage = build_stage("tts", {"model": "espeak-ng", "engine": "espeak-ng", "language": "es"})
    assert isinstance(stage, EspeakTTS) and stage.voice == "es" and stage.name == "espeak-ng"
    spec = {"model": "espeak-ng", "engine": "espeak-ng", "settings": {"voice": "en-us", "rate": 200}}
    stage = build_stage("tts", spec)
    assert (stage.voice, stage.rate) == ("en-us", 200)


@pytest.mark.integration
def test_build_every_stage_of_the_default_stack(provisioned):
    stack = load_stack("default")
    stages = {kind: build_stage(kind, spec) for kind, spec in stack["stages"].items()}
    assert isinstance(stages["vad"], SileroVAD)
    assert isinstance(stages["stt"], FasterWhisperSTT)
    assert stages["stt"].ct2_config == Ct2WhisperConfig(compute_type="int8", cpu_threads=2)
    assert isinstance(stages["llm"], LlamaLLM)
    assert (stages["llm"].llama_config.n_ctx, stages["llm"].llama_config.n_threads) == (1024, 2)
    assert isinstance(stages["tts"], PiperTTS) and stages["tts"].sample_rate == 22050
    assert {kind: stage.name for kind, stage in stages.items()} == {
        kind: spec["model"] for kind, spec in stack["stages"].items()
    }
    assert not any(stage.loaded for stage in stages.values())


@pytest.mark.integration
def test_build_stage_splits_settings_between_engine_config_and_stage(model_paths):
    stage = build_stage("vad", {"model": "silero-vad", "settings": {"threshold": 0.6, "intra_op_num_threads": 1}})
    assert stage.threshold == 0.6 and stage.ort_config.intra_op_num_threads == 1
    assert stage.model_path == model_paths["silero-vad"]
    stage = build_stage("llm", {"model": "gemma-3-270m-q4_k_m", "engine": "llama.cpp",
                                "settings": {"n_ctx": 256, "max_tokens": 5, "stop": ["\n"]}},
                        prompt_builder=str.upper)
    assert (stage.llama_config.n_ctx, stage.max_tokens, stage.stop) == (256, 5, ["\n"])
    assert stage.prompt_builder is str.upper
