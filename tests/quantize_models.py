"""Small ONNX graphs and feeds for the quantization tests (built here, no model files needed)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from saraikit.engines.quant_variants import PIPER_DETERMINISTIC_SCALES


def conv_matmul_model(path):
    """x[1,3,16,16] -> Conv(8 filters 3x3) -> Relu -> Flatten -> MatMul(1568x16) -> y[1,16]; named nodes."""
    rng = np.random.default_rng(1)
    conv_w = helper.make_tensor("conv_w", TensorProto.FLOAT, [8, 3, 3, 3], rng.standard_normal(216).astype(np.float32))
    fc_w = helper.make_tensor(
        "fc_w", TensorProto.FLOAT, [8 * 14 * 14, 16], rng.standard_normal(8 * 14 * 14 * 16).astype(np.float32)
    )
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        initializer=[conv_w, fc_w],
    )
    return _save(graph, path)


def add_relu_model(path):
    """Only elementwise ops: nothing worth quantizing."""
    bias = helper.make_tensor("b", TensorProto.FLOAT, [8], np.arange(8, dtype=np.float32))
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["h"], name="add"), helper.make_node("Relu", ["h"], ["y"], name="relu")],
        "addrelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        initializer=[bias],
    )
    return _save(graph, path)


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def matmul_feeds(n=8, size=256, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((2, size)).astype(np.float32)} for _ in range(n)]


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def piper_feeds(n_phonemes, seed, scales=PIPER_DETERMINISTIC_SCALES):
    """SYNTHETIC phoneme ids (valid ids < 256, no meaning); real phonemes come from the TTS front end."""
    ids = np.random.default_rng(seed).integers(1, 150, (1, n_phonemes)).astype(np.int64)
    return {"input": ids, "input_lengths": np.array([n_phonemes], np.int64), "scales": np.array(scales, np.float32)}

