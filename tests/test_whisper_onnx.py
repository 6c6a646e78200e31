"""Tests for saraikit.engines.whisper_onnx: features, the ONNX-encoder +
CTranslate2-decoder backend's checks on a tiny random Whisper, then the two
provisioned Whisper models on a real LibriVox clip.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.data.audio import Audio, read_audio
from saraikit.engines.whisper_export import export_encoder
from saraikit.engines.whisper_onnx import OnnxEncoderWhisper, compare_with_ct2, feature_frames

from helpers import tiny_matmul_model
from model_files import fake_features, make_fake_whisper

CLIP_0880 = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    return make_fake_whisper(tmp_path_factory.mktemp("fake") / "whisper-fake")


@pytest.fixture(scope="module")
def fake_onnx(fake, tmp_path_factory) -> Path:
    return export_encoder(fake, tmp_path_factory.mktemp("fake_onnx") / "encoder.onnx")


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------


def test_feature_frames_pads_to_whole_30_s_windows():
    tone = (0.1 * np.sin(np.arange(3 * 16000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    features = feature_frames(tone)
    assert features.shape == (80, 3000)
    assert np.all(features[:, 300:] == 0)  # 3 s = 300 frames of content, then zero padding
    assert np.all(features[:, :300] != 0)
    assert feature_frames(np.zeros(31 * 16000, dtype=np.float32), n_mels=128).shape == (128, 6000)


@pytest.mark.parametrize("audio, message", [
    (np.zeros(0, dtype=np.float32), "non-empty mono"),
    (np.zeros((2, 1600), dtype=np.float32), "non-empty mono"),
    (np.array([0.0, np.nan], dtype=np.float32), "finite"),
    (np.zeros(1600, dtype=np.int16), "finite float"),
    (Audio(np.zeros(800, dtype=np.float32), 8000), "16000 Hz"),
])
def test_feature_frames_rejects_bad_audio(audio, message):
    with pytest.raises(DataError, match=message):
        feature_frames(audio)


# ---------------------------------------------------------------------------
# The backend's checks (on the fake model: no real weights needed)
# ---------------------------------------------------------------------------


def test_backend_encode_rejects_wrong_feature_shape(fake, fake_onnx):
    backend = OnnxEncoderWhisper(fake, fake_onnx)
    assert backend.encode(fake_features()[0]).shape == (1, 1500, 16)
    with pytest.raises(DataError, match=r"expected shape \[batch, 8, 3000\].*got \[1, 80, 3000\]"):
        backend.encode(np.zeros((1, 80, 3000), dtype=np.float32))
    with pytest.raises(DataError, match=r"got \[1, 8, 2999\]"):
        backend.encode(np.zeros((1, 8, 2999), dtype=np.float32))
    with pytest.raises(ConfigError, match="English-only"):
        backend.transcribe(np.zeros(1600, dtype=np.float32), language="es")
    with pytest.raises(ConfigError, match="beam_size"):
        backend.transcribe(np.zeros(1600, dtype=np.float32), beam_size=0)


def test_backend_rejects_onnx_files_that_are_not_this_models_encoder(fake, tmp_path):
    other = make_fake_whisper(tmp_path / "wider", d_model=24)
    wider_onnx = export_encoder(other, tmp_path / "wider.onnx")
    with pytest.raises(ModelError, match=r"needs \[batch, time, 16\]"):
        OnnxEncoderWhisper(fake, wider_onnx)
    matmul = tiny_matmul_model(tmp_path / "matmul.onnx")
    with pytest.raises(ModelError, match="expected input 'mel' and output 'encoder_output'"):
        OnnxEncoderWhisper(fake, matmul)
    no_tokenizer = tmp_path / "no_tokenizer"
    no_tokenizer.mkdir()
    (no_tokenizer / "model.bin").write_bytes((fake / "model.bin").read_bytes())
    with pytest.raises(ModelError, match="tokenizer.json"):
        OnnxEncoderWhisper(no_tokenizer, wider_onnx)


# ---------------------------------------------------------------------------
# Integration: the provisioned models on real speech
# ---------------------------------------------------------------------------


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def clip_0880() -> Audio:
    return read_audio(CLIP_0880, target_sr=16000)


@pytest.fixture(scope="module")
def exported(model_paths, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("encoders")
    return {name: export_encoder(model_paths[name], folder / f"{name}.onnx")
            for name in ("whisper-tiny.en", "whisper-base")}


@pytest.mark.integration
@pytest.mark.parametrize("name, d_model", [("whisper-tiny.en", 384), ("whisper-base", 512)])
def test_real_encoder_matches_ctranslate2_fp32(name, d_model, model_paths, exported, clip_0880):
    features = feature_frames(clip_0880)
    result = compare_with_ct2(model_paths[name], exported[name], features)
    assert result["cosine"] >= 0.9999
    assert result["max_abs"] <= 1e-3 * result["reference_max_abs"]
    assert onnx.load(str(exported[name]), load_external_data=False).graph.output[0] \
        .type.tensor_type.shape.dim[2].dim_value == d_model


@pytest.mark.integration
def test_tiny_en_transcript_matches_faster_whisper(model_paths, exported, clip_0880):
    from saraikit.engines.ct2 import build_faster_whisper

    backend = OnnxEncoderWhisper(model_paths["whisper-tiny.en"], exported["whisper-tiny.en"])
    result = backend.transcribe(clip_0880.samples, beam_size=5)
    # The reference is "he was not an ill disposed young man"; tiny.en hears "old-sposed",
    # and so does plain faster-whisper on the same audio.
    assert _words(result.text) == "he was not an old sposed young man"
    assert result.language == "en" and result.language_probability is None
    assert result.windows == 1 and result.encoder_ms > 0 and result.decoder_ms > 0
    segments, _ = build_faster_whisper(model_paths["whisper-tiny.en"]).transcribe(
        clip_0880.samples, beam_size=5, without_timestamps=True, vad_filter=False)
    assert _words(" ".join(s.text for s in segments)) == _words(result.text)
    assert backend.transcribe(clip_0880.samples, beam_size=1).text == result.text


@pytest.mark.integration
def test_base_detects_english_and_hears_ill_disposed(model_paths, exported, clip_0880):
    backend = OnnxEncoderWhisper(model_paths["whisper-base"], exported["whisper-base"])
    result = backend.transcribe(clip_0880, beam_size=1)
    assert "he was not an ill disposed young man" in _words(result.text)
    assert result.language == "en" and result.language_probability > 0.9
