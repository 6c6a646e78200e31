import pytest
from quality_helpers import librivox_0880 as load_librivox_0880

from saraikit.core import paths
from saraikit.core.errors import ConfigError
from saraikit.engines.whisper_export import default_export
from saraikit.quality.stt_eval import score, transcribe_all
from saraikit.quality.transcribe import (
    DECODING,
    DECODING_POLICY,
    FASTER_WHISPER_OPTIONS,
    SttSystem,
    Transcriber,
    int8_encoders,
    standard_systems,
)


# --------------------------------------------------------------------------
# unit tests (no models)


def test_decoding_policy_is_greedy_without_fallback_or_timestamps():
    assert DECODING == {"beam_size": 1, "without_timestamps": True, "temperature": 0.0,
                        "condition_on_previous_text": False}
    assert FASTER_WHISPER_OPTIONS == {"without_timestamps": True, "temperature": 0.0,
                                      "condition_on_previous_text": False}
    assert DECODING_POLICY.vad_filter is False
    assert SttSystem("a", "whisper-base").config()["decoding"] == DECODING


def test_int8_encoders_lists_variants_of_the_model_only(tmp_path):
    for name in ["whisper-base-encoder.dynamic-s8.onnx", "whisper-base-encoder.preprocessed.onnx",
                 "requantized/whisper-base-encoder.dynamic-s8.dynamic-u8.onnx",
                 "whisper-tiny.en-encoder.dynamic-s8.onnx", "sub/whisper-base-encoder.static-qdq.onnx",
                 ".staging/whisper-base-encoder.dynamic-u8.onnx"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = int8_encoders(tmp_path)
    assert [variant for variant, _ in found] == ["dynamic-s8", "static-qdq"]
    assert int8_encoders(tmp_path / "missing") == []


# --------------------------------------------------------------------------
# integration: real models and real speech


@pytest.fixture(scope="module")
def librivox_0880():
    return load_librivox_0880()


@pytest.mark.integration
def test_whisper_base_transcribes_librivox_0880_without_error(provisioned, librivox_0880):
    base_int8 = Transcriber(SttSystem("whisper-base int8", "whisper-base", "int8"))
    result = score(transcribe_all(base_int8, librivox_0880))
    assert result.report.wer == 0.0
    assert result.report.rows.iloc[0]["ref_norm"] == "he was not an ill disposed young man"
    assert result.report.raw_wer > 0  # "He", "ill-disposed", "man." differ before normalization


@pytest.mark.integration
def test_onnx_encoder_system_matches_on_librivox_0880(provisioned, librivox_0880):
    system = SttSystem("whisper-base onnx-fp32", "whisper-base", "float32", default_export("whisper-base"))
    assert system.backend == "onnx-encoder" and len(system.sha256()) == 64
    result = score(transcribe_all(Transcriber(system), librivox_0880))
    assert result.report.wer == 0.0


@pytest.mark.integration
def test_standard_systems_pick_int8_variants(provisioned, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "outputs_dir", lambda: tmp_path)
    systems, notes = standard_systems("t")
    assert [s.label for s in systems][-1] == "whisper-base onnx-fp32" and "INT8 skipped" in notes[0]
    folder = tmp_path / "t" / "quantized"
    folder.mkdir(parents=True)
    for variant in ("dynamic-s8", "dynamic-u8"):
        (folder / f"whisper-base-encoder.{variant}.onnx").write_bytes(b"x")
    systems, notes = standard_systems("t", max_int8=1)
    assert [s.label for s in systems][-1] == "whisper-base onnx-int8 dynamic-s8" and "first 1" in notes[0]
    systems, _ = standard_systems("t", max_int8=1, prefer=["dynamic-u8"])
    assert [s.label for s in systems][-1] == "whisper-base onnx-int8 dynamic-u8"
    systems, _ = standard_systems("t", int8_variants=["dynamic-u8"])
    assert systems[-1].encoder.name == "whisper-base-encoder.dynamic-u8.onnx"
    systems, notes = standard_systems("t", only=["whisper-base int8", "whisper-base onnx-int8 dynamic-s8"])
    assert [s.label for s in systems] == ["whisper-base int8", "whisper-base onnx-int8 dynamic-s8"]
    assert "(parameter only_systems)" in notes[-1]
    with pytest.raises(ConfigError, match="not found"):
        standard_systems("t", int8_variants=["static-qdq"])
