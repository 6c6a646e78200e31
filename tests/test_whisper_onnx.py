"""Whisper encoder as ONNX: weights read from model.bin, the graph against
CTranslate2's own encoder, the ONNX-encoder + CTranslate2-decoder backend.

Unit tests build a tiny random Whisper (d_model 16) with CTranslate2's own
spec classes, so the numerics are checked against CTranslate2 in about a
second. Integration tests use the two provisioned Whisper models and a real
LibriVox clip.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest

from saraikit.data.audio import Audio, read_audio
from saraikit.core.errors import ConfigError, DataError, ModelError
from saraikit.models.catalog import sha256_file
from saraikit.engines.whisper_onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    OnnxEncoderWhisper,
    compare_with_ct2,
    default_export,
    encoder_spec,
    export_encoder,
    feature_frames,
    load_encoder,
    read_ct2_variables,
)

from helpers import tiny_matmul_model

CLIP_0880 = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")
FAKE = {"d_model": 16, "layers": 2, "heads": 2, "n_mels": 8, "vocab": 8}


# ---------------------------------------------------------------------------
# A tiny random Whisper, saved by CTranslate2's own writer
# ---------------------------------------------------------------------------


def _fake_shape(name: str, d: int, n_mels: int, vocab: int) -> list[int]:
    leaf = name.rsplit("/", 1)[-1]
    rows = {"ffn/linear_0": 4 * d, "self_attention/linear_0": 3 * d, "/attention/linear_1": 2 * d,
            "embeddings": vocab, "projection": vocab}
    if "conv1" in name:
        return [d, n_mels, 3] if leaf == "weight" else [d]
    if "conv2" in name:
        return [d, d, 3] if leaf == "weight" else [d]
    if leaf == "encodings":
        return [1500 if name.startswith("encoder") else 448, d]
    out = next((n for key, n in rows.items() if key in name), d)
    in_dim = 4 * d if "ffn/linear_1" in name else d
    return [out, in_dim] if leaf == "weight" else [out]


def make_fake_whisper(folder: Path, seed: int = 0, quantization: str = "float16", d_model: int = 16) -> Path:
    """A random WhisperSpec model (2 layers, 2 heads, 8 mels) with a word-level tokenizer.json."""
    import tokenizers
    from ctranslate2.specs import model_spec, whisper_spec

    rng = np.random.default_rng(seed)
    d, n_mels, vocab = d_model, FAKE["n_mels"], FAKE["vocab"]
    spec = whisper_spec.WhisperSpec(FAKE["layers"], FAKE["heads"], 1, FAKE["heads"])

    def fill(layer, name, value):
        leaf = name.rsplit("/", 1)[-1]
        if value is None or (value == model_spec.OPTIONAL and leaf in ("bias", "encodings")):
            shape = _fake_shape(name, d, n_mels, vocab)
            array = rng.standard_normal(shape).astype(np.float32) * (0.3 if len(shape) > 1 else 0.1)
            if leaf == "gamma":
                array += 1
            if name.endswith("self_attention/linear_0/bias"):
                array[d:2 * d] = 0  # Whisper's key projection has no bias
            setattr(layer, leaf, array)

    model_spec.visit_spec(spec, fill)
    spec.register_vocabulary([f"t{i}" for i in range(vocab)])
    spec.validate()
    spec.optimize(quantization)
    folder.mkdir(parents=True)
    spec.save(str(folder))
    words = tokenizers.models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t0")
    tokenizers.Tokenizer(words).save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    return make_fake_whisper(tmp_path_factory.mktemp("fake") / "whisper-fake")


@pytest.fixture(scope="module")
def fake_onnx(fake, tmp_path_factory) -> Path:
    return export_encoder(fake, tmp_path_factory.mktemp("fake_onnx") / "encoder.onnx")


def _ct2_encode(folder: Path, features: np.ndarray) -> np.ndarray:
    import ctranslate2

    whisper = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
    return np.array(whisper.encode(storage, to_cpu=True))


def _run(onnx_path: Path, features: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: features})[0]


def _features(batch: int = 1, frames: int = 3000, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, FAKE["n_mels"], frames)).astype(np.float32)


# ---------------------------------------------------------------------------
# Reading model.bin
# ---------------------------------------------------------------------------


def test_read_ct2_variables_returns_stored_values_and_settings(fake):
    variables = read_ct2_variables(fake / "model.bin", "encoder/")
    assert variables.spec == "WhisperSpec"
    assert all(name.startswith("encoder/") for name in variables.arrays)
    assert variables.arrays["encoder/num_heads"].dtype == np.int16
    assert int(variables.arrays["encoder/num_heads"]) == FAKE["heads"]
    conv1 = variables.arrays["encoder/conv1/weight"]
    assert conv1.dtype == np.float16 and conv1.shape == (16, 8, 3)
    # The same random draw the builder made, rounded to float16 by CTranslate2's writer.
    expected = (np.random.default_rng(0).standard_normal((16, 8, 3)).astype(np.float32) * 0.3).astype(np.float16)
    assert np.array_equal(conv1, expected)


def test_encoder_spec_reads_sizes_from_the_header(fake):
    spec = encoder_spec(fake)
    assert (spec.d_model, spec.layers, spec.heads, spec.n_mels, spec.positions) == (16, 2, 2, 8, 1500)
    assert spec.head_dim == 8


def test_int8_model_is_dequantized_back_to_its_float_weights(tmp_path):
    float_dir = make_fake_whisper(tmp_path / "f32", seed=3, quantization="float32")
    int8_dir = make_fake_whisper(tmp_path / "int8", seed=3, quantization="int8")
    assert read_ct2_variables(int8_dir / "model.bin", "encoder/conv2/").arrays["encoder/conv2/weight"].dtype == np.int8
    _, float_weights = load_encoder(float_dir)
    _, dequantized = load_encoder(int8_dir)
    weight = "encoder/layer_0/ffn/linear_0/weight"
    scale = np.abs(float_weights[weight]).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(dequantized[weight] - float_weights[weight]) <= scale * 0.5 + 1e-7)
    assert "encoder/layer_0/ffn/linear_0/weight_scale" not in dequantized


# ---------------------------------------------------------------------------
# The exported graph against CTranslate2's encoder
# ---------------------------------------------------------------------------


def test_export_matches_ctranslate2_on_the_fake_model(fake, fake_onnx):
    features = _features()
    result = compare_with_ct2(fake, fake_onnx, features)
    assert result["cosine"] >= 0.99999
    assert result["max_abs"] <= 1e-4 * result["reference_max_abs"]
    assert result["snr_db"] > 80


def test_batch_and_frames_are_dynamic(fake, fake_onnx):
    features = _features(batch=2, frames=1000)
    output = _run(fake_onnx, features)
    assert output.shape == (2, 500, 16)
    reference = _ct2_encode(fake, features[1:])
    assert np.allclose(output[1:], reference, atol=1e-4)


def test_exported_graph_layout(fake_onnx):
    model = onnx.load(str(fake_onnx))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version == 17
    initializers = {init.name for init in model.graph.initializer}
    assert "encoder/layer_0/self_attention/q/bias" in initializers
    assert "encoder/layer_0/self_attention/v/bias" in initializers
    assert "encoder/layer_0/self_attention/k/bias" not in initializers  # zero key bias left out
    ops = {node.op_type for node in model.graph.node}
    assert {"Erf", "LayerNormalization", "Softmax", "Conv"} <= ops and "Gelu" not in ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["d_model"] == "16" and meta["source_model"] == "whisper-fake"
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 8, "frames"]


def test_opset_20_uses_the_gelu_op_with_the_same_output(fake, fake_onnx, tmp_path):
    path = export_encoder(fake, tmp_path / "gelu20.onnx", opset=20)
    assert "Gelu" in {node.op_type for node in onnx.load(str(path)).graph.node}
    features = _features()
    assert np.allclose(_run(path, features), _run(fake_onnx, features), atol=1e-5)


# ---------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------


def test_folder_without_model_bin_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="without model.bin"):
        export_encoder(tmp_path, tmp_path / "out.onnx")
    with pytest.raises(ModelError, match="no such"):
        encoder_spec(tmp_path / "missing")
    assert not (tmp_path / "out.onnx").exists()


def _ct2_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def test_non_whisper_ctranslate2_model_is_a_model_error(tmp_path):
    (tmp_path / "model.bin").write_bytes(
        struct.pack("<I", 6) + _ct2_string("TransformerSpec") + struct.pack("<III", 1, 0, 0))
    with pytest.raises(ModelError, match="TransformerSpec.*expected a WhisperSpec"):
        export_encoder(tmp_path, tmp_path / "out.onnx")


def test_truncated_model_bin_is_a_model_error(fake, tmp_path):
    data = (fake / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        export_encoder(tmp_path, tmp_path / "out.onnx")
    assert list(tmp_path.iterdir()) == [tmp_path / "model.bin"]  # no half-written file left


def test_opset_below_17_is_a_config_error(fake, tmp_path):
    with pytest.raises(ConfigError, match="opset"):
        export_encoder(fake, tmp_path / "out.onnx", opset=16)


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
    assert backend.encode(_features()[0]).shape == (1, 1500, 16)
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
# default_export: idempotent, with a sidecar
# ---------------------------------------------------------------------------


def test_default_export_writes_once_and_again_when_the_model_changes(tmp_path):
    root = tmp_path / "models"
    model_bin = make_fake_whisper(root / "whisper-fake") / "model.bin"
    out = default_export("whisper-fake", root)
    assert out == root / "whisper-fake-encoder-onnx" / "whisper-fake-encoder.onnx"
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar == {"source_model": "whisper-fake", "source_sha256": sha256_file(model_bin),
                       "d_model": 16, "layers": 2, "heads": 2, "n_mels": 8, "opset": 17,
                       "input": "mel", "output": "encoder_output"}
    first_mtime = out.stat().st_mtime_ns
    assert default_export("whisper-fake", root) == out
    assert out.stat().st_mtime_ns == first_mtime  # up to date: not rewritten
    later = out.stat().st_mtime + 10
    os.utime(model_bin, (later, later))
    default_export("whisper-fake", root)
    assert out.stat().st_mtime_ns != first_mtime
    assert sorted(p.name for p in out.parent.iterdir()) == ["whisper-fake-encoder.json", "whisper-fake-encoder.onnx"]


def test_default_export_of_a_non_ctranslate2_model_is_a_model_error(tmp_path):
    tiny_matmul_model(tmp_path / "matmul.onnx")
    with pytest.raises(ModelError, match="not a CTranslate2 folder"):
        default_export("matmul", tmp_path)


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
