"""Tests for saraikit.engines.whisper_export: weights read from model.bin, the
exported graph against CTranslate2's own encoder, bad inputs, default_export.

The tests build a tiny random Whisper (d_model 16) with CTranslate2's own spec
classes, so the numerics are checked against CTranslate2 in about a second.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest

from saraikit.core.errors import ConfigError, ModelError
from saraikit.engines.whisper_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    default_export,
    encoder_spec,
    export_encoder,
    load_encoder,
)
from saraikit.engines.whisper_onnx import compare_with_ct2
from saraikit.models.catalog import sha256_file
from saraikit.models.ct2_file import read_ct2_variables

from helpers import tiny_matmul_model
from model_files import fake_features, make_fake_whisper


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


# ---------------------------------------------------------------------------
# The encoder's weights from model.bin
# ---------------------------------------------------------------------------


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
    features = fake_features()
    result = compare_with_ct2(fake, fake_onnx, features)
    assert result["cosine"] >= 0.99999
    assert result["max_abs"] <= 1e-4 * result["reference_max_abs"]
    assert result["snr_db"] > 80


def test_batch_and_frames_are_dynamic(fake, fake_onnx):
    features = fake_features(batch=2, frames=1000)
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
    features = fake_features()
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
