"""Tests for the trimmed-window Whisper STT (saraikit.engines.whisper_trim), its loop detector
(whisper_loops) and its encoder files (whisper_encoders): unit tests on a tiny random Whisper and on
stubbed decodes, then whisper-base on real English and Spanish clips.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from saraikit.core.errors import ConfigError, ModelError
from saraikit.data.audio import read_16k
from saraikit.data.textnorm import normalize
from saraikit.engines.build import build_stage
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.engines.stage import event_problems
from saraikit.engines.whisper_encoders import encoder_file, recipe_path
from saraikit.engines.whisper_export import INPUT_NAME, OUTPUT_NAME, export_path
from saraikit.engines.whisper_loops import loop_reason, repeated_unit
from saraikit.engines.whisper_onnx import agreement, content_frames, feature_frames
from saraikit.engines.whisper_trim import MIN_TOKEN_CAP, TrimmedWhisperSTT, WindowPlan, _Decoded, token_cap
from saraikit.models.stack import load_stack

from helpers import tiny_matmul_model
from model_files import fake_features, make_fake_whisper

EN_CLIP = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")  # 2.99 s
ES_CLIP = Path("/usr/share/asterisk/sounds/es_MX_f_Allison/conf-noempty.wav")  # 3.28 s
ES_LOOPING = Path("/usr/share/asterisk/sounds/es_MX_f_Allison/digits/13.wav")  # 0.82 s "tres, dos, uno"


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    return make_fake_whisper(tmp_path_factory.mktemp("models") / "whisper-fake")


# ---------------------------------------------------------------------------
# The window and the token cap
# ---------------------------------------------------------------------------


def test_window_is_audio_plus_margin_at_least_the_minimum_even_and_at_most_30_s():
    plan = WindowPlan(margin_frames=128, min_window_frames=1000)
    assert [plan.frames(n) for n in (1, 299, 872, 873, 2999, 3000)] == [1000, 1000, 1000, 1002, 3000, 3000]
    bare = WindowPlan(margin_frames=0, min_window_frames=0)
    assert [bare.frames(n) for n in (1, 301, 158)] == [2, 302, 158]
    assert bare.frames(160) == 162  # 2 x n_mels: CTranslate2 would read the encoder output as features
    assert WindowPlan(0, 0, n_mels=128).frames(256) == 258
    assert WindowPlan(128, 1000, full=True).frames(10) == 3000


def test_token_cap_follows_the_audio_length_with_a_floor_and_the_decoders_limit():
    assert token_cap(0.8, 8.0) == MIN_TOKEN_CAP
    assert token_cap(10.0, 8.0) == 80
    assert token_cap(10.01, 8.0) == 81
    assert token_cap(30.0, 10.0) == 224  # Whisper decodes at most 448 // 2 tokens
    assert token_cap(3.0, None) == 224


# ---------------------------------------------------------------------------
# Loop detection on crafted sequences
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("tokens, found", [
    ([7, 7, 7, 7], (0, 1, 4)),  # "5 5 5 5"
    ([1, 7, 7, 7], None),  # three in a row can be speech ("no no no")
    ([9, 1, 2, 1, 2, 1, 2], (1, 2, 3)),
    ([1, 2, 1, 2, 3], None),
    ([4, 5, 6, 4, 5, 6], (0, 3, 2)),  # "Seven of clubs Seven of clubs"
    ([4, 5, 6, 8, 4, 5, 6], None),  # a phrase said twice, not back to back
    ([], None),
])
def test_repeated_token_units(tokens, found):
    assert repeated_unit(tokens) == found


def test_loop_reasons_name_the_repeated_piece_a_character_run_or_the_cap():
    decode = {7: " 5", 4: " Seven", 5: " of", 6: " clubs"}
    text_of = lambda ids: "".join(decode[i] for i in ids)  # noqa: E731
    assert loop_reason([7, 7, 7, 7, 7], "5 5 5 5 5", decode=text_of) == "the output repeats ' 5' 5 times in a row"
    assert "' Seven of clubs' 2 times" in loop_reason([4, 5, 6, 4, 5, 6], "Seven of clubs Seven of clubs",
                                                      decode=text_of)
    assert loop_reason([1], "¿¿¿¿¿¿¿") == "the output has a run of 7 '¿' characters"
    assert loop_reason([1, 2], "1000000 ... ok") is None  # digits and short runs are text
    assert loop_reason([1, 2, 3], "He was not", capped=True).startswith("the decode stopped at its token cap")
    assert loop_reason([1, 2, 3], "He was not an ill-disposed young man.") is None


def _stub_stage(fake: Path, decodes: list[_Decoded], **settings) -> tuple[TrimmedWhisperSTT, list[int]]:
    """A 'loaded' stage whose decodes are ``decodes`` in turn; returns it and the window sizes asked for."""
    stage = TrimmedWhisperSTT(fake, **settings)
    asked: list[int] = []

    def decode(chunk, frames, mark, meta):
        asked.append(frames)
        meta["encoded_frames"] += frames
        return decodes[len(asked) - 1]

    stage._decode = decode
    stage.backend = type("Backend", (), {"n_mels": 80})()
    stage.load_s = 0.0
    return stage, asked


SPEECH = 0.1 * np.sin(np.arange(16000) * 2 * np.pi * 220 / 16000).astype(np.float32)
LOOP = _Decoded("5 5 5 5 5", [7] * 5, 1000, "the output repeats ' 5' 5 times in a row")


def test_a_loop_falls_back_to_the_full_window_and_the_clean_text_is_kept(fake):
    stage, asked = _stub_stage(fake, [LOOP, _Decoded("five", [7], 3000, None)])
    result = stage.run(SPEECH)
    assert asked == [1000, 3000]
    assert (result.value.text, result.value.status, result.value.reason) == ("five", "ok", None)
    assert result.meta["fell_back"] and not result.meta["looped"]
    assert result.meta["window_frames"] == [3000] and result.meta["encoded_frames"] == 4000
    assert result.meta["fallback_reasons"] == [LOOP.loop]


def test_a_loop_on_the_full_window_too_is_reported_as_looped(fake):
    stage, asked = _stub_stage(fake, [LOOP, LOOP])
    transcript = stage.run(SPEECH).value
    assert asked == [1000, 3000]
    assert transcript.status == "looped" and transcript.text == "5 5 5 5 5"
    assert transcript.reason == f"{LOOP.loop} (even on the full window)"


def test_without_fallback_a_loop_is_reported_at_once(fake):
    stage, asked = _stub_stage(fake, [LOOP], loop_fallback=False)
    result = stage.run(SPEECH)
    assert asked == [1000]
    assert result.value.status == "looped" and result.value.reason == f"{LOOP.loop} (with no fallback)"
    assert result.meta["looped"] and not result.meta["fell_back"]


@pytest.mark.parametrize("samples, reason", [(np.zeros(8000, dtype=np.float32), "silent audio"),
                                             (np.zeros(0, dtype=np.float32), "empty audio")])
def test_silent_and_empty_audio_skip_the_model(fake, samples, reason):
    stage, asked = _stub_stage(fake, [])
    result = stage.run(samples)
    assert asked == [] and result.value.text == "" and result.value.status == "empty"
    assert result.value.reason.startswith(reason)
    assert [e.name for e in result.events] == ["start", "end"]


# ---------------------------------------------------------------------------
# Bad settings and files, caught before loading
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"margin_frames": -1}, r"margin_frames: invalid value -1"),
    ({"min_window_frames": 3001}, r"min_window_frames: invalid value 3001"),
    ({"window_frames": "half"}, r"window_frames: expected one of \('trim', 'full'\)"),
    ({"max_tokens_per_s": 0}, r"max_tokens_per_s: expected a number > 0"),
    ({"loop_fallback": "yes"}, r"loop_fallback: invalid value 'yes'"),
    ({"language": "xx"}, r"language: unknown Whisper language code 'xx'"),
    ({"encoder": "dynamic-s9"}, r"unknown encoder 'dynamic-s9'; valid: 'fp32', 'int8' \(= dynamic-s8\), "
                                r"'dynamic-s8'"),
    ({"encoder": "static-qdq-s8s8-minmax"}, r"static recipe, which needs calibration data"),
])
def test_bad_settings_are_config_errors_naming_the_key(fake, settings, message):
    with pytest.raises(ConfigError, match=message):
        TrimmedWhisperSTT(fake, **settings)


def test_unknown_setting_in_a_stack_is_a_config_error(fake):
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['margin'\]; valid: .*'margin_frames'"):
        build_stage("stt", {"model": str(fake), "engine": "whisper-onnx", "settings": {"margin": 10}})


def test_an_encoder_file_that_is_not_a_whisper_encoder_is_a_model_error_at_build_time(fake, tmp_path):
    matmul = tiny_matmul_model(tmp_path / "matmul.onnx")
    with pytest.raises(ModelError, match=rf"{matmul}: not a Whisper encoder: expected input 'mel'"):
        TrimmedWhisperSTT(fake, encoder=str(matmul))
    with pytest.raises(ModelError, match=rf"{tmp_path / 'missing.onnx'}: no such encoder file"):
        TrimmedWhisperSTT(fake, encoder=str(tmp_path / "missing.onnx"))
    wider = make_fake_whisper(tmp_path / "wider", d_model=24)
    wider_onnx = encoder_file("fp32", wider)
    with pytest.raises(ModelError, match=r"not an encoder of whisper-fake.*\[batch, time, 16\]"):
        TrimmedWhisperSTT(fake, encoder=str(wider_onnx))


def test_a_stack_file_with_the_whisper_onnx_engine_builds_the_trimmed_stage(fake, tmp_path):
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(f"""stages:
  stt: {{model: {fake}, engine: whisper-onnx, language: en,
        settings: {{encoder: int8, margin_frames: 64, min_window_frames: 500, max_tokens_per_s: 6,
                    loop_fallback: false, cpu_threads: 2, intra_op_num_threads: 1}}}}
""")
    stage = build_stage("stt", load_stack(stack_file)["stages"]["stt"])
    assert isinstance(stage, TrimmedWhisperSTT) and not stage.loaded
    assert (stage.encoder, stage.plan.margin_frames, stage.plan.min_window_frames) == ("int8", 64, 500)
    assert (stage.max_tokens_per_s, stage.loop_fallback, stage.language) == (6.0, False, "en")
    assert stage.ct2_config == Ct2WhisperConfig(cpu_threads=2)
    assert stage.ort_config == OrtConfig(intra_op_num_threads=1)


# ---------------------------------------------------------------------------
# Encoder files: exported and quantized once, beside the model; INT8 runs trimmed
# ---------------------------------------------------------------------------


def test_encoder_files_are_made_once_beside_the_model_and_the_int8_one_runs_on_a_trimmed_window(fake):
    fp32 = encoder_file("fp32", fake)
    int8 = encoder_file("int8", fake)
    assert fp32 == export_path(fake) == fake.parent / "whisper-fake-encoder-onnx" / "whisper-fake-encoder.onnx"
    assert int8 == recipe_path(fake, "dynamic-s8") == fp32.with_name("whisper-fake-encoder.dynamic-s8.onnx")
    made = int8.stat().st_mtime_ns
    assert encoder_file("dynamic-s8", fake) == int8 and int8.stat().st_mtime_ns == made  # cached
    later = fp32.stat().st_mtime + 10
    os.utime(fp32, (later, later))
    encoder_file("int8", fake)
    assert int8.stat().st_mtime_ns != made  # remade from the newer FP32 file
    assert not [p.name for p in fp32.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    features = fake_features(frames=1000)
    reference = build_ort_session(fp32).run([OUTPUT_NAME], {INPUT_NAME: features})[0]
    quantized = build_ort_session(int8).run([OUTPUT_NAME], {INPUT_NAME: features})[0]
    assert quantized.shape == reference.shape == (1, 500, 16)
    assert agreement(reference, quantized)["cosine"] > 0.95


# ---------------------------------------------------------------------------
# Integration: whisper-base on real speech
# ---------------------------------------------------------------------------


def _stage(model_paths, **settings) -> TrimmedWhisperSTT:
    stage = TrimmedWhisperSTT(model_paths["whisper-base"], OrtConfig(intra_op_num_threads=2),
                              Ct2WhisperConfig(cpu_threads=2), **settings)
    stage.load()
    return stage


@pytest.fixture(scope="module")
def default_stage(model_paths) -> TrimmedWhisperSTT:
    return _stage(model_paths)


@pytest.fixture(scope="module")
def full_stage(model_paths) -> TrimmedWhisperSTT:
    return _stage(model_paths, window_frames="full")


@pytest.mark.integration
def test_trimmed_window_matches_ctranslate2s_encoder_and_a_whole_window_margin_is_the_full_window(default_stage):
    import ctranslate2

    samples = read_16k(EN_CLIP)
    content = content_frames(samples)
    window = np.zeros((1, 80, 1000), dtype=np.float32)
    window[0, :, :content.shape[1]] = content
    onnx_out = default_stage.backend.encode_window(window)
    ct2 = ctranslate2.models.Whisper(str(default_stage.model_dir), device="cpu", compute_type="float32")
    reference = np.array(ct2.encode(ctranslate2.StorageView.from_array(window), to_cpu=True))
    assert onnx_out.shape == (1, 500, 512)
    result = agreement(reference, onnx_out)
    assert result["cosine"] >= 0.9999 and result["max_abs"] <= 1e-3 * result["reference_max_abs"]
    whole = WindowPlan(margin_frames=3000, min_window_frames=0).frames(content.shape[1])
    padded = np.zeros((1, 80, whole), dtype=np.float32)
    padded[0, :, :content.shape[1]] = content
    full = default_stage.backend.encode(feature_frames(samples))
    assert whole == 3000 and np.allclose(default_stage.backend.encode_window(padded), full, atol=1e-5)


@pytest.mark.integration
@pytest.mark.parametrize("clip, language", [(EN_CLIP, "en"), (ES_CLIP, "es")])
def test_default_trimmed_window_hears_the_same_words_as_the_full_window(default_stage, full_stage, clip, language):
    default_stage.language = full_stage.language = language
    samples = read_16k(clip)
    trimmed, full = default_stage.run(samples), full_stage.run(samples)
    assert normalize(trimmed.value.text, language) == normalize(full.value.text, language) != ""
    assert trimmed.meta["window_frames"] == [1000] and full.meta["window_frames"] == [3000]
    assert trimmed.value.status == "ok" and not trimmed.meta["fell_back"] and trimmed.meta["tokens"] > 5
    assert event_problems(trimmed.events) == []
    assert [e.name for e in trimmed.events] == ["start", "prepared", "encoded", "first_output", "end"]


@pytest.mark.integration
def test_language_detection_is_its_own_event(default_stage):
    default_stage.language = None
    result = default_stage.run(read_16k(EN_CLIP))
    assert [e.name for e in result.events] == ["start", "prepared", "encoded", "language", "first_output", "end"]
    assert result.value.language == "en" and result.value.language_probability > 0.9
    assert "he was not an ill" in normalize(result.value.text, "en")


@pytest.mark.integration
def test_a_real_trimmed_loop_falls_back_and_without_fallback_is_reported(model_paths, default_stage, full_stage):
    default_stage.language = full_stage.language = "es"
    samples = read_16k(ES_LOOPING)
    result = default_stage.run(samples)
    assert result.meta["fell_back"] and "repeats" in result.meta["fallback_reasons"][0]
    assert result.value.status == "ok" and result.meta["window_frames"] == [3000]
    assert result.value.text == full_stage.run(samples).value.text
    no_fallback = _stage(model_paths, language="es", loop_fallback=False).run(samples)
    assert no_fallback.value.status == "looped" and no_fallback.meta["looped"]
    assert no_fallback.meta["tokens"] <= MIN_TOKEN_CAP  # the cap stopped the loop early
