"""Tests for saraikit.models.onnx_file (through inspect_model): small graphs built here, then the real ONNX models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from saraikit.core.errors import ModelError
from saraikit.models.inspect import inspect_model

from model_files import DNSMOS, OPSET, PIPER, SILERO, float_matmul_model, integer_matmul_model, save_model


def _if_model():
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    then_out = helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])
    else_out = helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])
    then_nodes = [helper.make_node("Relu", ["x"], ["t0"]), helper.make_node("Neg", ["t0"], ["t"])]
    then_graph = helper.make_graph(then_nodes, "then", [], [then_out])
    else_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["e"])], "else", [], [else_out])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)
    graph = helper.make_graph([node], "if_model", [cond, x], [y])
    return helper.make_model(graph, opset_imports=OPSET)


def test_float_matmul_is_not_quantized_and_histogram_is_exact(tmp_path):
    info = inspect_model(save_model(float_matmul_model(), tmp_path / "mm.onnx"))
    d = info.details
    assert info.format == "onnx" and info.bytes == (tmp_path / "mm.onnx").stat().st_size
    assert d["op_histogram"] == {"MatMul": 1, "Add": 1, "Relu": 1}
    assert d["quantized"] is False
    assert d["parameters"] == 15 and d["initializer_bytes"] == 60
    assert d["opsets"] == {"ai.onnx": 17}
    assert d["producer"] == "saraikit-test"
    assert d["weight_dtype"] == "float32"


def test_dynamic_dims_are_reported_by_name_or_question_mark(tmp_path):
    d = inspect_model(save_model(float_matmul_model(), tmp_path / "mm.onnx")).details
    assert d["inputs"] == [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]
    assert d["outputs"] == [{"name": "y", "shape": ["batch", "?"], "dtype": "float32"}]


def test_integer_matmul_is_quantized_with_evidence(tmp_path):
    d = inspect_model(save_model(integer_matmul_model(), tmp_path / "q.onnx")).details
    assert d["quantized"] is True
    evidence = d["quantization_evidence"]
    assert evidence["MatMulInteger"] == 1
    assert evidence["DynamicQuantizeLinear"] == 1
    assert evidence["QuantizeLinear"] == 0
    assert evidence["int8_initializers"] == 2
    assert evidence["uint8_initializers"] == 0


def test_qlinear_matmul_counts_as_quantized(tmp_path):
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 3])
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "z"),
        numpy_helper.from_array(np.ones((4, 3), np.uint8), "b"),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "s", "z", "b", "s", "z", "s", "z"], ["y"])
    model = helper.make_model(helper.make_graph([node], "qlm", [a], [y], inits), opset_imports=OPSET)
    d = inspect_model(save_model(model, tmp_path / "qlm.onnx")).details
    assert d["quantized"] is True
    assert d["quantization_evidence"]["QLinearMatMul"] == 1
    assert d["quantization_evidence"]["uint8_initializers"] == 2


def test_if_subgraph_nodes_are_counted(tmp_path):
    d = inspect_model(save_model(_if_model(), tmp_path / "if.onnx")).details
    assert d["op_histogram"] == {"If": 1, "Relu": 2, "Neg": 1}
    assert d["n_nodes"] == 4 and d["n_subgraphs"] == 2


def test_external_data_is_counted_and_missing_file_is_reported(tmp_path):
    model = float_matmul_model()
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)  # fmt: skip
    d = inspect_model(path).details
    assert d["initializer_bytes"] == 60 and d["parameters"] == 15
    assert d["external_data_files"] == ["weights.bin"] and d["external_data_missing"] == []
    (tmp_path / "weights.bin").unlink()
    d = inspect_model(path).details
    assert d["external_data_missing"] == ["weights.bin"]
    assert d["initializer_bytes"] == 60


# ---------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------


def test_text_file_named_onnx(tmp_path):
    path = tmp_path / "readme.onnx"
    path.write_text("This is not a model, just some text.\nSecond line.\n")
    with pytest.raises(ModelError, match="readme.onnx"):
        inspect_model(path)


def test_truncated_onnx(tmp_path):
    full = save_model(float_matmul_model(), tmp_path / "full.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        inspect_model(path)


# ---------------------------------------------------------------------------
# integration: the real default ONNX models
# ---------------------------------------------------------------------------


@pytest.mark.integration
def test_piper_voice():
    d = inspect_model(PIPER).details
    assert [i["name"] for i in d["inputs"]] == ["input", "input_lengths", "scales"]
    assert d["inputs"][0] == {"name": "input", "shape": ["batch_size", "phonemes"], "dtype": "int64"}
    assert d["inputs"][2] == {"name": "scales", "shape": [3], "dtype": "float32"}
    assert d["quantized"] is False
    assert d["opsets"] == {"ai.onnx": 15} and d["producer"] == "pytorch 2.0.0"
    assert d["sidecar"]["sample_rate"] == 22050 and d["sidecar"]["language"] == "en_US"
    assert d["n_subgraphs"] == 0 and d["n_nodes"] == 2755


@pytest.mark.integration
def test_silero_vad():
    d = inspect_model(SILERO).details
    assert d["inputs"] == [
        {"name": "input", "shape": ["seq_len", 576], "dtype": "float32"},
        {"name": "h", "shape": [1, 1, 128], "dtype": "float32"},
        {"name": "c", "shape": [1, 1, 128], "dtype": "float32"},
    ]
    assert [o["name"] for o in d["outputs"]] == ["speech_probs", "hn", "cn"]
    assert d["opsets"] == {"ai.onnx": 18} and d["quantized"] is False


@pytest.mark.integration
def test_dnsmos():
    d = inspect_model(DNSMOS).details
    assert d["inputs"] == [{"name": "input_1", "shape": ["N", 144160], "dtype": "float32"}]
    assert d["outputs"] == [{"name": "Identity:0", "shape": ["N", 3], "dtype": "float32"}]
    assert d["producer"] == "keras2onnx 1.8.1" and d["quantized"] is False
