import shutil

import pytest

from saraikit.models import catalog, inventory, stack

pytestmark = pytest.mark.integration


@pytest.fixture()
def models_copy(tmp_path, provisioned):
    """A scratch models/ folder with two default models plus user drops (one of them corrupt)."""
    root = tmp_path / "models"
    catalog.provision(root, only=["silero-vad", "piper-en_US-joe-medium"])
    shutil.copytree(catalog.paths.models_dir() / "whisper-tiny.en", root / "my-tiny")
    (root / "broken.onnx").write_text("not a model")
    return root


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


def test_default_stack_is_compatible(provisioned):
    compat = inventory.compatibility_table(stack.load_stack(), inventory.inspect_all())
    assert len(compat) >= 8 and compat["ok"].all()
    assert set(compat["status"]) == {"ok"}


def test_a_mismatched_stack_is_a_failure_row(provisioned):
    config = stack.load_stack()
    config["stages"]["stt"]["has"]["hidden_size"] = 3584  # whisper-base has 512
    config["stages"]["tts"]["produces"]["sample_rate"] = 16000  # the voice speaks at 22050 Hz
    compat = inventory.compatibility_table(config, inventory.inspect_all())
    failures = compat[~compat["ok"]]
    assert set(failures["fact"]) == {"hidden_size", "sample_rate"}
    assert set(failures["status"]) == {"mismatch"}


def test_user_models_and_a_corrupt_drop_appear_as_rows(models_copy):
    table = inventory.inventory_table(inventory.inspect_all(models_copy)).set_index("name")
    assert set(table.index) == {"silero-vad", "piper-en_US-joe-medium", "my-tiny", "broken"}
    assert table.loc["my-tiny", "source"] == "user" and table.loc["my-tiny", "role"] == "unknown"
    assert table.loc["my-tiny", "hidden_size"] == 384
    assert "broken.onnx" in table.loc["broken", "error"]
    assert table.loc["silero-vad", "error"] == ""
