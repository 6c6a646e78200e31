"""Tests for saraikit.models.compat: stage declarations and links checked against inspected models."""

from __future__ import annotations

import pytest

from saraikit.core.errors import ConfigError
from saraikit.models.compat import check_compatibility, model_facts
from saraikit.models.inspect import ModelInfo, inspect_model

from model_files import float_matmul_model, save_model, tiny_gguf


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
    info = inspect_model(save_model(float_matmul_model(), tmp_path / "mm.onnx"))
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
    (tmp_path / "tiny.gguf").write_bytes(tiny_gguf())
    facts = model_facts(inspect_model(tmp_path / "tiny.gguf"))
    assert facts["expects"] == {"hidden_size": 64, "vocab_size": 4, "context_length": 2048}
