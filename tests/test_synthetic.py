"""Tests for saraikit.synthetic: synthetic feeds from ONNX input specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from saraikit.core.errors import ConfigError
from saraikit.models.inspect import inspect_model
from saraikit.experiments.synthetic import INPUT_KIND, describe_inputs, input_specs, synthetic_inputs

from model_files import DNSMOS, PIPER, SILERO


@pytest.fixture
def mixed_model(tmp_path) -> Path:
    """Inputs of several dtypes with named, unnamed and static dims."""
    inputs = [
        helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "tokens"]),
        helper.make_tensor_value_info("feats", TensorProto.FLOAT16, ["batch", 8]),
        helper.make_tensor_value_info("gain", TensorProto.DOUBLE, [None]),
        helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 3]),
    ]
    outputs = [
        helper.make_tensor_value_info(f"{v.name}_out", v.type.tensor_type.elem_type, None) for v in inputs
    ]
    nodes = [helper.make_node("Identity", [v.name], [f"{v.name}_out"]) for v in inputs]
    graph = helper.make_graph(nodes, "mixed", inputs, outputs)
    # onnx 1.23 writes IR 14 by default; onnxruntime 1.31 reads up to IR 13
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = tmp_path / "mixed.onnx"
    onnx.save(model, str(path))
    return path


def test_dtype_and_shape_per_input(mixed_model):
    feeds = synthetic_inputs(mixed_model, {"batch": 2, "tokens": 5, "gain:0": 4})
    assert feeds["ids"].dtype == np.int64 and feeds["ids"].shape == (2, 5)
    assert feeds["ids"].min() >= 0 and feeds["ids"].max() < 10
    assert feeds["feats"].dtype == np.float16 and feeds["feats"].shape == (2, 8)
    assert feeds["gain"].dtype == np.float64 and feeds["gain"].shape == (4,)
    assert feeds["mask"].dtype == np.bool_ and feeds["mask"].shape == (2, 3)


def test_feeds_run_in_a_session(mixed_model):
    session = ort.InferenceSession(str(mixed_model), providers=["CPUExecutionProvider"])
    feeds = synthetic_inputs(session, {"batch": 1, "tokens": 3, "gain:0": 2})
    outputs = session.run(None, feeds)
    assert [o.shape for o in outputs] == [(1, 3), (1, 8), (2,), (2, 3)]


def test_missing_dynamic_dims_are_listed_per_input(mixed_model):
    with pytest.raises(ConfigError) as error:
        synthetic_inputs(mixed_model, {"batch": 1})
    message = str(error.value)
    assert "ids: ['tokens']" in message and "gain: ['gain:0']" in message
    assert "feats" not in message
    with pytest.raises(ConfigError, match=r"ids: \['batch', 'tokens'\]; feats: \['batch'\]"):
        synthetic_inputs(mixed_model)


def test_same_seed_same_arrays_other_seed_other_arrays(mixed_model):
    dims = {"batch": 1, "tokens": 7, "gain:0": 3}
    first, again = synthetic_inputs(mixed_model, dims, seed=3), synthetic_inputs(mixed_model, dims, seed=3)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    other = synthetic_inputs(mixed_model, dims, seed=4)
    assert not np.array_equal(first["feats"], other["feats"])


def test_overriding_one_input_leaves_the_others_unchanged(mixed_model):
    dims = {"batch": 1, "tokens": 7, "gain:0": 3}
    plain = synthetic_inputs(mixed_model, dims)
    given = synthetic_inputs(mixed_model, dims, values={"ids": [[1, 2, 3]]})
    assert given["ids"].dtype == np.int64 and given["ids"].tolist() == [[1, 2, 3]]
    np.testing.assert_array_equal(plain["feats"], given["feats"])


def test_values_are_checked(mixed_model):
    dims = {"batch": 1, "tokens": 2, "gain:0": 3}
    with pytest.raises(ConfigError, match="mask"):
        synthetic_inputs(mixed_model, dims, values={"mask": np.zeros((3, 3), bool)})
    with pytest.raises(ConfigError, match="nope"):
        synthetic_inputs(mixed_model, dims, values={"nope": [1]})


def test_describe_inputs(mixed_model):
    table = describe_inputs(mixed_model)
    assert list(table.columns) == ["name", "shape", "dtype", "dynamic_dims"]
    assert table.to_dict("records") == [
        {"name": "ids", "shape": ["batch", "tokens"], "dtype": "int64", "dynamic_dims": ["batch", "tokens"]},
        {"name": "feats", "shape": ["batch", 8], "dtype": "float16", "dynamic_dims": ["batch"]},
        {"name": "gain", "shape": ["?"], "dtype": "float64", "dynamic_dims": ["gain:0"]},
        {"name": "mask", "shape": [2, 3], "dtype": "bool", "dynamic_dims": []},
    ]


def test_specs_agree_between_file_session_and_model_info(mixed_model):
    session = ort.InferenceSession(str(mixed_model), providers=["CPUExecutionProvider"])
    from_file = input_specs(mixed_model)
    assert input_specs(session) == from_file
    assert input_specs(inspect_model(mixed_model)) == from_file


def test_label():
    assert INPUT_KIND == "synthetic"


# ---------------------------------------------------------------------------
# integration: the real default models
# ---------------------------------------------------------------------------


@pytest.mark.integration
def test_piper_runs_on_synthetic_phonemes():
    session = ort.InferenceSession(str(PIPER), providers=["CPUExecutionProvider"])
    feeds = synthetic_inputs(
        session,
        {"batch_size": 1, "phonemes": 50},
        values={"input_lengths": np.array([50]), "scales": np.array([0.667, 1.0, 0.8], np.float32)},
    )
    assert feeds["input"].shape == (1, 50) and feeds["input"].dtype == np.int64
    audio = session.run(None, feeds)[0]
    assert audio.dtype == np.float32 and audio.ndim == 4 and audio.shape[:3] == (1, 1, 1)
    assert audio.shape[-1] > 1000
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0


@pytest.mark.integration
def test_silero_vad_runs():
    session = ort.InferenceSession(str(SILERO), providers=["CPUExecutionProvider"])
    describe = describe_inputs(SILERO)
    assert describe["dynamic_dims"].tolist() == [["seq_len"], [], []]
    probs, hn, cn = session.run(None, synthetic_inputs(SILERO, {"seq_len": 1}))
    assert probs.shape == (1,) and 0.0 <= float(probs[0]) <= 1.0
    assert hn.shape == cn.shape == (1, 1, 128)


@pytest.mark.integration
def test_dnsmos_runs():
    session = ort.InferenceSession(str(DNSMOS), providers=["CPUExecutionProvider"])
    (scores,) = session.run(None, synthetic_inputs(session, {"N": 1}))
    assert scores.shape == (1, 3) and np.isfinite(scores).all()
