"""Tests for saraikit.models.inventory: the flattened inventory frame, then the tables of the real models."""

import shutil

import pandas as pd
import pytest

from saraikit.models import catalog, inventory, stack
from saraikit.models.compat import check_compatibility
from saraikit.models.inspect import inspect_model

from model_files import PIPER, SILERO, integer_matmul_model, save_model, tiny_gguf


@pytest.fixture()
def models_copy(tmp_path, provisioned):
    """A scratch models/ folder with two default models plus user drops (one of them corrupt)."""
    root = tmp_path / "models"
    catalog.provision(root, only=["silero-vad", "piper-en_US-joe-medium"])
    shutil.copytree(catalog.paths.models_dir() / "whisper-tiny.en", root / "my-tiny")
    (root / "broken.onnx").write_text("not a model")
    return root


def test_inventory_frame_has_one_row_per_model(tmp_path):
    onnx_info = inspect_model(save_model(integer_matmul_model(), tmp_path / "q.onnx"))
    (tmp_path / "tiny.gguf").write_bytes(tiny_gguf())
    gguf_info = inspect_model(tmp_path / "tiny.gguf")
    frame = inventory.inventory_frame({"q": onnx_info, "tiny": gguf_info})
    assert list(frame["name"]) == ["q", "tiny"]
    q, tiny = frame.iloc[0], frame.iloc[1]
    assert q["format"] == "onnx" and bool(q["quantized"]) and q["n_inputs"] == 1 and q["opset"] == 17
    assert tiny["arch"] == "llama" and tiny["quant_type"] == "Q4_K_M" and tiny["ctx"] == 2048
    assert tiny["hidden_size"] == 64 and bool(tiny["quantized"])


@pytest.mark.integration
def test_real_inventory_and_stack(whisper_base_dir, gemma_gguf):
    infos = {
        "silero-vad": inspect_model(SILERO),
        "whisper-base": inspect_model(whisper_base_dir),
        "gemma3-270m": inspect_model(gemma_gguf),
        "piper-en_US-joe-medium": inspect_model(PIPER),
    }
    frame = inventory.inventory_frame(infos)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert frame.set_index("name").loc["gemma3-270m", "quant_type"] == "Q4_K_M"
    config = {
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
    result = check_compatibility(config, infos)
    assert result["ok"].all(), result.loc[~result["ok"], "message"].tolist()
    assert (result["status"] == "ok").sum() >= 4


@pytest.mark.integration
def test_inventory_of_real_default_models(provisioned):
    inspected = inventory.inspect_all()
    table = inventory.inventory_table(inspected).set_index("name")
    assert set(provisioned) <= set(table.index)
    assert table.loc["gemma-3-270m-q4_k_m", "quant_type"] == "Q4_K_M"
    assert bool(table.loc["gemma-3-270m-q4_k_m", "quantized"]) is True
    assert bool(table.loc["piper-en_US-joe-medium", "quantized"]) is False
    assert table.loc["whisper-base", "hidden_size"] == 512 and table.loc["whisper-tiny.en", "hidden_size"] == 384
    assert table.loc["whisper-base", "language"] == "multilingual" and table.loc["whisper-tiny.en", "language"] == "en"
    io = inventory.io_table(inspected)
    piper_inputs = io[(io["model"] == "piper-en_US-joe-medium") & (io["kind"] == "input")]
    assert list(piper_inputs["tensor"]) == ["input", "input_lengths", "scales"]
    assert list(piper_inputs["dtype"]) == ["int64", "int64", "float32"]
    assert piper_inputs.iloc[0]["dynamic dims"] == "batch_size, phonemes"
    gguf = inventory.gguf_table(inspected).set_index("model")
    assert gguf.loc["gemma-3-270m-q4_k_m", "architecture"] == "gemma3"
    assert gguf.loc["gemma-3-270m-q4_k_m", "context_length"] == 32768
    assert not gguf.loc["gemma-3-270m-q4_k_m", "has_chat_template"]
    ops = inventory.op_histogram_table(inspected)
    assert ops[ops["model"] == "silero-vad"]["count"].sum() > 0


@pytest.mark.integration
def test_default_stack_is_compatible(provisioned):
    compat = inventory.compatibility_table(stack.load_stack(), inventory.inspect_all())
    assert len(compat) >= 8 and compat["ok"].all()
    assert set(compat["status"]) == {"ok"}


@pytest.mark.integration
def test_a_mismatched_stack_is_a_failure_row(provisioned):
    config = stack.load_stack()
    config["stages"]["stt"]["has"]["hidden_size"] = 3584  # whisper-base has 512
    config["stages"]["tts"]["produces"]["sample_rate"] = 16000  # the voice speaks at 22050 Hz
    compat = inventory.compatibility_table(config, inventory.inspect_all())
    failures = compat[~compat["ok"]]
    assert set(failures["fact"]) == {"hidden_size", "sample_rate"}
    assert set(failures["status"]) == {"mismatch"}


@pytest.mark.integration
def test_user_models_and_a_corrupt_drop_appear_as_rows(models_copy):
    table = inventory.inventory_table(inventory.inspect_all(models_copy)).set_index("name")
    assert set(table.index) == {"silero-vad", "piper-en_US-joe-medium", "my-tiny", "broken"}
    assert table.loc["my-tiny", "source"] == "user" and table.loc["my-tiny", "role"] == "unknown"
    assert table.loc["my-tiny", "hidden_size"] == 384
    assert "broken.onnx" in table.loc["broken", "error"]
    assert table.loc["silero-vad", "error"] == ""
