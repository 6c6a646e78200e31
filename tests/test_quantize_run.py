"""Quantizing small graphs built here (rows, exclusions, staging, pre-processing), and the real Piper voice."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from saraikit.core.errors import ConfigError, ModelError
from saraikit.experiments.quantize.calibration import CalibrationReader
from saraikit.experiments.quantize.fidelity import compare_outputs
from saraikit.experiments.quantize.run import ROW_COLUMNS, preprocess, quantize, quantize_all
from saraikit.engines.quant_variants import PIPER_LENGTH_PATH, Variant

from helpers import tiny_matmul_model
from quantize_models import add_relu_model, conv_matmul_model, files_in, matmul_feeds, piper_feeds


@pytest.fixture()
def matmul_model(tmp_path):
    return tiny_matmul_model(tmp_path / "mm.onnx", size=256)


@pytest.fixture(scope="module")
def piper(model_paths):
    return model_paths["piper-en_US-joe-medium"]


def test_dynamic_quantization_shrinks_and_stays_close(matmul_model, tmp_path):
    out = tmp_path / "out" / "mm.dyn.onnx"
    result = quantize(matmul_model, Variant("dyn"), out)
    assert result.ok and result.status == "ok" and result.error is None
    assert result.node_types["MatMulInteger"] == 1 and result.node_types["DynamicQuantizeLinear"] == 1
    assert "MatMul" not in result.node_types
    assert result.bytes == out.stat().st_size < 0.4 * matmul_model.stat().st_size
    assert files_in(out.parent) == ["mm.dyn.onnx"]  # the staging folder is gone
    comparison = compare_outputs(matmul_model, out, matmul_feeds(n=4))
    assert comparison.reference_deterministic is True and comparison.n_feeds == 4
    assert 0.99 < comparison.cosine_worst <= comparison.cosine_mean <= 1.0
    assert 20 < comparison.snr_db_worst < 80 and comparison.length_diff_max == 0


def test_static_qdq_inserts_quantize_dequantize_pairs(matmul_model, tmp_path):
    variant = Variant("qdq", method="static", calibration="MinMax")
    result = quantize(matmul_model, variant, tmp_path / "mm.qdq.onnx", matmul_feeds())
    assert result.ok, result.error
    assert result.node_types["QuantizeLinear"] >= 1 and result.node_types["DequantizeLinear"] >= 2
    assert result.float_weight_ops == {}  # the MatMul now reads dequantized int8 weights
    comparison = compare_outputs(matmul_model, result.path, matmul_feeds(n=3, seed=5))
    assert comparison.cosine_worst > 0.99


def test_static_qoperator_writes_qlinear_ops(matmul_model, tmp_path):
    variant = Variant("qop", method="static", quant_format="QOperator", activation_type="QUInt8")
    reader = CalibrationReader(matmul_model, matmul_feeds())
    result = quantize(matmul_model, variant, tmp_path / "mm.qop.onnx", reader)
    assert result.ok, result.error
    assert result.node_types.get("QLinearMatMul") == 1


def test_excluding_conv_keeps_it_float(tmp_path):
    model = conv_matmul_model(tmp_path / "conv.onnx")
    everything = quantize(model, Variant("all"), tmp_path / "all.onnx")
    assert everything.node_types.get("ConvInteger") == 1 and "Conv" not in everything.node_types
    noconv = quantize(model, Variant("noconv", op_types_to_exclude=["Conv", "ConvTranspose"]),
                        tmp_path / "noconv.onnx")
    assert noconv.ok and noconv.node_types["Conv"] == 1 and "ConvInteger" not in noconv.node_types
    assert noconv.node_types["MatMulInteger"] == 1
    assert "float: Conv 1" in noconv.node_summary()
    by_pattern = quantize(model, Variant("nofc", nodes_to_exclude=["f*"]), tmp_path / "nofc.onnx")
    assert by_pattern.node_types["MatMul"] == 1 and by_pattern.node_types["ConvInteger"] == 1


def test_exclusion_that_matches_nothing_or_unnamed_nodes_is_an_error(matmul_model, tmp_path):
    conv = conv_matmul_model(tmp_path / "conv.onnx")
    with pytest.raises(ConfigError, match="'encoder/\\*' matches no node"):
        quantize(conv, Variant("v", nodes_to_exclude=["encoder/*"]), tmp_path / "v.onnx")
    with pytest.raises(ConfigError, match="no name"):  # tiny_matmul_model leaves its nodes unnamed
        quantize(matmul_model, Variant("v", op_types_to_exclude=["MatMul"]), tmp_path / "v.onnx")


def test_already_quantized_model_is_skipped(matmul_model, tmp_path):
    first = quantize(matmul_model, Variant("dyn"), tmp_path / "once.onnx")
    again = quantize(first.path, Variant("dyn"), tmp_path / "twice.onnx")
    assert (again.ok, again.status, again.path) == (False, "skipped", None)
    assert again.error.startswith("already quantized (2 quantization nodes:")
    assert "MatMulInteger 1" in again.error
    assert not (tmp_path / "twice.onnx").exists()


def test_model_without_quantizable_ops_is_skipped(tmp_path):
    model = add_relu_model(tmp_path / "addrelu.onnx")
    result = quantize(model, Variant("dyn"), tmp_path / "out.onnx")
    assert result.status == "skipped" and result.error.startswith("no quantizable ops (")
    assert "MatMul" in result.error and "Conv" in result.error
    conv = conv_matmul_model(tmp_path / "conv.onnx")
    excluded = quantize(conv, Variant("none", op_types_to_quantize=["Conv"], op_types_to_exclude=["Conv"]),
                          tmp_path / "none.onnx")
    assert excluded.status == "skipped" and "excludes all 1 of them" in excluded.error


def test_static_variant_needs_calibration(matmul_model, tmp_path):
    with pytest.raises(ConfigError, match="is static: pass calibration_reader"):
        quantize(matmul_model, Variant("s", method="static"), tmp_path / "s.onnx")


def test_failed_quantization_leaves_no_file(matmul_model, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # ORT rejects a scale override without a zero point while quantizing.
    bogus = Variant("bogus", method="static", extra_options={"TensorQuantOverrides": {"W": [{"scale": 0.5}]}})
    result = quantize(matmul_model, bogus, out_dir / "bogus.onnx", matmul_feeds(n=2))
    assert (result.ok, result.status, result.path) == (False, "failed", None)
    assert "zero_point" in result.error or "scale" in result.error
    assert files_in(out_dir) == []


def test_model_failing_the_checker_after_writing_leaves_no_file(matmul_model, tmp_path, monkeypatch):
    def reject(path):
        assert (tmp_path / "out").exists() and any((tmp_path / "out").rglob("mm.dyn.onnx"))  # ORT did write it
        raise onnx.checker.ValidationError("checker says no")

    monkeypatch.setattr(onnx.checker, "check_model", reject)
    result = quantize(matmul_model, Variant("dyn"), tmp_path / "out" / "mm.dyn.onnx")
    assert result.status == "failed" and result.error == "ValidationError: checker says no"
    assert files_in(tmp_path / "out") == []


def test_corrupt_or_missing_model_raises_model_error(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage that is not a model" * 10)
    with pytest.raises(ModelError, match="corrupt.onnx"):
        quantize(corrupt, Variant("dyn"), tmp_path / "out" / "x.onnx")
    with pytest.raises(ModelError, match="not found"):
        quantize(tmp_path / "missing.onnx", Variant("dyn"), tmp_path / "out" / "x.onnx")
    assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


def test_preprocess_writes_a_marked_model(matmul_model, tmp_path):
    result = preprocess(matmul_model, tmp_path / "pre.onnx")
    assert result.ok and result.path == str(tmp_path / "pre.onnx")
    props = {p.key: p.value for p in onnx.load(result.path).metadata_props}
    assert props.get("onnx.quant.pre_process") == "onnxruntime.quant"
    sympy_missing = __import__("importlib.util").util.find_spec("sympy") is None
    assert ("sympy is not installed" in result.note) == sympy_missing


def test_preprocess_falls_back_to_the_original(matmul_model, tmp_path, monkeypatch):
    from onnxruntime.quantization import shape_inference

    def broken(*args, **kwargs):
        raise RuntimeError("shape inference exploded")

    monkeypatch.setattr(shape_inference, "quant_pre_process", broken)
    result = preprocess(matmul_model, tmp_path / "pre.onnx")
    assert (result.ok, result.path) == (False, str(matmul_model))
    assert "RuntimeError: shape inference exploded" in result.note and "using the original model" in result.note
    assert files_in(tmp_path) == ["mm.onnx"]


def test_quantize_all_makes_one_row_per_variant(matmul_model, tmp_path):
    variants = [Variant("dyn-s8"), Variant("dyn-u8", weight_type="QUInt8"),
                Variant("qdq", method="static"), Variant("none", op_types_to_quantize=["Conv"])]
    frame = quantize_all(matmul_model, variants, tmp_path / "out", calibration_feeds=matmul_feeds(n=3),
                           progress=False)
    assert list(frame.columns) == ROW_COLUMNS and list(frame["name"]) == ["dyn-s8", "dyn-u8", "qdq", "none"]
    assert list(frame["status"]) == ["ok", "ok", "ok", "skipped"]
    ok = frame[frame["ok"]]
    assert (ok["size_ratio"] < 0.4).all() and ok["path"].map(lambda p: p.endswith(".onnx")).all()
    assert frame.loc[0, "path"].endswith("mm.dyn-s8.onnx")
    assert "MatMulInteger 1" in frame.loc[0, "node_types"]
    # Pre-processing fuses this 2-D MatMul + Add into Gemm, which dynamic quantization skips, so the dynamic
    # variants quantize the original; static QDQ quantizes Gemm and uses the pre-processed model.
    assert list(frame["source"]) == ["original", "original", "preprocessed", "preprocessed"]
    assert frame.attrs["preprocess"]["ok"] is True
    assert sorted(files_in(tmp_path / "out")) == ["mm.dyn-s8.onnx", "mm.dyn-u8.onnx", "mm.preprocessed.onnx",
                                                  "mm.qdq.onnx"]


def test_quantize_all_checks_arguments_before_any_work(matmul_model, tmp_path):
    with pytest.raises(ConfigError, match=r"static variants \['qdq'\] need calibration_feeds"):
        quantize_all(matmul_model, [Variant("qdq", method="static")], tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="duplicate names"):
        quantize_all(matmul_model, [Variant("a"), Variant("a")], tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="input 'x'"):
        quantize_all(matmul_model, [Variant("a")], tmp_path / "out",
                       calibration_feeds=[{"x": np.zeros((1, 3), np.float32)}], progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("calibration", ["Entropy", "Percentile"])
def test_histogram_calibration_accepts_feeds_of_different_lengths(matmul_model, tmp_path, calibration):
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((batch, 256)).astype(np.float32)} for batch in (1, 2, 3, 1)]
    variant = Variant(calibration.lower(), method="static", calibration=calibration)
    result = quantize(matmul_model, variant, tmp_path / "out.onnx", feeds)
    assert result.ok, result.error
    # Without the one-feed stride ORT fails to stack the differently shaped tensors.
    forced = Variant("all-at-once", method="static", calibration=calibration,
                       extra_options={"CalibStridedMinMax": len(feeds)})
    failed = quantize(matmul_model, forced, tmp_path / "forced.onnx", feeds)
    assert failed.status == "failed" and "inhomogeneous" in failed.error


@pytest.mark.integration
def test_piper_dynamic_int8_variants(piper, tmp_path):
    variants = [
        Variant("dynamic-s8"),
        Variant("dynamic-u8-keeplength", weight_type="QUInt8", nodes_to_exclude=PIPER_LENGTH_PATH),
    ]
    frame = quantize_all(piper, variants, tmp_path, progress=False).set_index("name")
    assert frame["ok"].all(), frame["reason"].to_dict()
    # Observed: 0.296 and 0.62 of the 63 MB FP32 file (Conv weights dominate).
    assert frame.loc["dynamic-s8", "size_ratio"] < 0.35
    assert frame.loc["dynamic-u8-keeplength", "size_ratio"] < 0.7
    feeds = [piper_feeds(60, 0), piper_feeds(25, 1), piper_feeds(90, 2)]

    full = compare_outputs(piper, frame.loc["dynamic-s8", "path"], feeds)
    assert full.reference_deterministic is True
    # Durations move with the quantized encoder: lengths differ by a few percent (observed <= 7%),
    # so waveform cosine is low (observed ~0.2) although the model runs and speaks.
    rows = full.frame()
    assert (rows["length_diff"].abs() / (rows["n_compared"] + rows["length_diff"].clip(upper=0).abs())).max() < 0.15

    kept = compare_outputs(piper, frame.loc["dynamic-u8-keeplength", "path"], feeds)
    assert kept.length_diff_max == 0
    assert kept.cosine_worst > 0.85  # observed ~0.94

