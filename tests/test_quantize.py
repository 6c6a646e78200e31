"""INT8 variants and fidelity: small graphs built here, plus the real Piper voice (integration)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from saraikit.experiments import quantize as q
from saraikit.core.errors import ConfigError, DataError, ModelError

from helpers import tiny_matmul_model

# ---------------------------------------------------------------------------
# Small graphs


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


@pytest.fixture()
def matmul_model(tmp_path):
    return tiny_matmul_model(tmp_path / "mm.onnx", size=256)


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------
# Variants


def test_variant_defaults_follow_the_method():
    dynamic = q.Variant("d")
    assert (dynamic.activation_type, dynamic.quant_format, dynamic.calibration) == ("QUInt8", "QOperator", None)
    static = q.Variant("s", method="STATIC", weight_type="qint8")
    assert (static.method, static.weight_type) == ("static", "QInt8")
    assert (static.activation_type, static.quant_format, static.calibration) == ("QInt8", "QDQ", "MinMax")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "fast"}, "method"),
        ({"quant_format": "QDQ"}, "QDQ needs method='static'"),
        ({"activation_type": "QInt8"}, "only QUInt8"),
        ({"calibration": "MinMax"}, "does not calibrate"),
        ({"method": "static", "activation_type": "QInt8", "weight_type": "QUInt8"}, "does not support"),
        ({"extra_options": {"NotAnOption": True}}, "NotAnOption"),
        ({"per_channel": "yes"}, "per_channel"),
        ({"op_types_to_exclude": "Conv"}, "op_types_to_exclude"),
    ],
)
def test_bad_variants_name_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        q.Variant("v", **kwargs)


def test_variant_name_must_be_a_file_name_and_dict_round_trips():
    with pytest.raises(ConfigError, match="file name"):
        q.Variant("a/b")
    variant = q.Variant("v", method="static", op_types_to_exclude=["Conv"], extra_options={"ActivationSymmetric": True})
    again = q.Variant.from_dict(variant.to_dict())
    assert again == variant and again.key() == variant.key() and again.op_types_to_exclude == ("Conv",)
    assert q.Variant("v", per_channel=True).key() != q.Variant("v").key()
    with pytest.raises(ConfigError, match="typo"):
        q.Variant.from_dict({"name": "v", "typo": 1})


def test_standard_variants_cover_dynamic_and_static():
    variants = q.standard_variants()
    names = [v.name for v in variants]
    assert len(names) == len(set(names)) == 10
    assert {v.calibration for v in variants if v.method == "static"} == {"MinMax", "Entropy", "Percentile"}
    assert {v.activation_type for v in variants if v.method == "static"} == {"QInt8", "QUInt8"}
    assert all(v.weight_type == "QInt8" and v.quant_format == "QDQ" for v in variants if v.method == "static")
    assert any(v.op_types_to_exclude == ("Conv", "ConvTranspose") for v in variants if v.method == "dynamic")
    assert {v.method for v in q.standard_variants(include_static=False)} == {"dynamic"}


# ---------------------------------------------------------------------------
# Quantizing


def test_dynamic_quantization_shrinks_and_stays_close(matmul_model, tmp_path):
    out = tmp_path / "out" / "mm.dyn.onnx"
    result = q.quantize(matmul_model, q.Variant("dyn"), out)
    assert result.ok and result.status == "ok" and result.error is None
    assert result.node_types["MatMulInteger"] == 1 and result.node_types["DynamicQuantizeLinear"] == 1
    assert "MatMul" not in result.node_types
    assert result.bytes == out.stat().st_size < 0.4 * matmul_model.stat().st_size
    assert files_in(out.parent) == ["mm.dyn.onnx"]  # the staging folder is gone
    comparison = q.compare_outputs(matmul_model, out, matmul_feeds(n=4))
    assert comparison.reference_deterministic is True and comparison.n_feeds == 4
    assert 0.99 < comparison.cosine_worst <= comparison.cosine_mean <= 1.0
    assert 20 < comparison.snr_db_worst < 80 and comparison.length_diff_max == 0


def test_static_qdq_inserts_quantize_dequantize_pairs(matmul_model, tmp_path):
    variant = q.Variant("qdq", method="static", calibration="MinMax")
    result = q.quantize(matmul_model, variant, tmp_path / "mm.qdq.onnx", matmul_feeds())
    assert result.ok, result.error
    assert result.node_types["QuantizeLinear"] >= 1 and result.node_types["DequantizeLinear"] >= 2
    assert result.float_weight_ops == {}  # the MatMul now reads dequantized int8 weights
    comparison = q.compare_outputs(matmul_model, result.path, matmul_feeds(n=3, seed=5))
    assert comparison.cosine_worst > 0.99


def test_static_qoperator_writes_qlinear_ops(matmul_model, tmp_path):
    variant = q.Variant("qop", method="static", quant_format="QOperator", activation_type="QUInt8")
    reader = q.CalibrationReader(matmul_model, matmul_feeds())
    result = q.quantize(matmul_model, variant, tmp_path / "mm.qop.onnx", reader)
    assert result.ok, result.error
    assert result.node_types.get("QLinearMatMul") == 1


def test_excluding_conv_keeps_it_float(tmp_path):
    model = conv_matmul_model(tmp_path / "conv.onnx")
    everything = q.quantize(model, q.Variant("all"), tmp_path / "all.onnx")
    assert everything.node_types.get("ConvInteger") == 1 and "Conv" not in everything.node_types
    noconv = q.quantize(model, q.Variant("noconv", op_types_to_exclude=["Conv", "ConvTranspose"]),
                        tmp_path / "noconv.onnx")
    assert noconv.ok and noconv.node_types["Conv"] == 1 and "ConvInteger" not in noconv.node_types
    assert noconv.node_types["MatMulInteger"] == 1
    assert "float: Conv 1" in noconv.node_summary()
    by_pattern = q.quantize(model, q.Variant("nofc", nodes_to_exclude=["f*"]), tmp_path / "nofc.onnx")
    assert by_pattern.node_types["MatMul"] == 1 and by_pattern.node_types["ConvInteger"] == 1


def test_exclusion_that_matches_nothing_or_unnamed_nodes_is_an_error(matmul_model, tmp_path):
    conv = conv_matmul_model(tmp_path / "conv.onnx")
    with pytest.raises(ConfigError, match="'encoder/\\*' matches no node"):
        q.quantize(conv, q.Variant("v", nodes_to_exclude=["encoder/*"]), tmp_path / "v.onnx")
    with pytest.raises(ConfigError, match="no name"):  # tiny_matmul_model leaves its nodes unnamed
        q.quantize(matmul_model, q.Variant("v", op_types_to_exclude=["MatMul"]), tmp_path / "v.onnx")


def test_already_quantized_model_is_skipped(matmul_model, tmp_path):
    first = q.quantize(matmul_model, q.Variant("dyn"), tmp_path / "once.onnx")
    again = q.quantize(first.path, q.Variant("dyn"), tmp_path / "twice.onnx")
    assert (again.ok, again.status, again.path) == (False, "skipped", None)
    assert again.error.startswith("already quantized (2 quantization nodes:")
    assert "MatMulInteger 1" in again.error
    assert not (tmp_path / "twice.onnx").exists()


def test_model_without_quantizable_ops_is_skipped(tmp_path):
    model = add_relu_model(tmp_path / "addrelu.onnx")
    result = q.quantize(model, q.Variant("dyn"), tmp_path / "out.onnx")
    assert result.status == "skipped" and result.error.startswith("no quantizable ops (")
    assert "MatMul" in result.error and "Conv" in result.error
    conv = conv_matmul_model(tmp_path / "conv.onnx")
    excluded = q.quantize(conv, q.Variant("none", op_types_to_quantize=["Conv"], op_types_to_exclude=["Conv"]),
                          tmp_path / "none.onnx")
    assert excluded.status == "skipped" and "excludes all 1 of them" in excluded.error


def test_static_variant_needs_calibration(matmul_model, tmp_path):
    with pytest.raises(ConfigError, match="is static: pass calibration_reader"):
        q.quantize(matmul_model, q.Variant("s", method="static"), tmp_path / "s.onnx")


@pytest.mark.parametrize(
    "feeds, message",
    [
        ([{"y": np.zeros((2, 256), np.float32)}], r"unknown input\(s\) \['y'\], missing input\(s\) \['x'\]"),
        ([{"x": np.zeros((2, 256), np.float64)}],
         "calibration feed 0, input 'x': dtype float64, the model expects float32"),
        ([{"x": np.zeros((2, 256), np.float32)}, {"x": np.zeros((2, 8), np.float32)}],
         r"calibration feed 1, input 'x': shape \[2, 8\], the model expects \['batch', 256\]"),
        ([], "non-empty list"),
    ],
)
def test_mismatched_calibration_feeds_name_the_input(matmul_model, feeds, message):
    with pytest.raises(ConfigError, match=message):
        q.CalibrationReader(matmul_model, feeds)


def test_calibration_reader_serves_each_feed_once_per_pass(matmul_model):
    feeds = matmul_feeds(n=4)
    reader = q.CalibrationReader(matmul_model, feeds)
    assert [f["x"][0, 0] for f in reader] == [f["x"][0, 0] for f in feeds]
    assert reader.get_next() is None and len(reader) == 4
    reader.set_range(1, 3)
    assert [f["x"][0, 0] for f in reader] == [f["x"][0, 0] for f in feeds[1:3]]
    reader.rewind()
    assert len(list(reader)) == 4


def test_failed_quantization_leaves_no_file(matmul_model, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # ORT rejects a scale override without a zero point while quantizing.
    bogus = q.Variant("bogus", method="static", extra_options={"TensorQuantOverrides": {"W": [{"scale": 0.5}]}})
    result = q.quantize(matmul_model, bogus, out_dir / "bogus.onnx", matmul_feeds(n=2))
    assert (result.ok, result.status, result.path) == (False, "failed", None)
    assert "zero_point" in result.error or "scale" in result.error
    assert files_in(out_dir) == []


def test_model_failing_the_checker_after_writing_leaves_no_file(matmul_model, tmp_path, monkeypatch):
    def reject(path):
        assert (tmp_path / "out").exists() and any((tmp_path / "out").rglob("mm.dyn.onnx"))  # ORT did write it
        raise onnx.checker.ValidationError("checker says no")

    monkeypatch.setattr(onnx.checker, "check_model", reject)
    result = q.quantize(matmul_model, q.Variant("dyn"), tmp_path / "out" / "mm.dyn.onnx")
    assert result.status == "failed" and result.error == "ValidationError: checker says no"
    assert files_in(tmp_path / "out") == []


def test_corrupt_or_missing_model_raises_model_error(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage that is not a model" * 10)
    with pytest.raises(ModelError, match="corrupt.onnx"):
        q.quantize(corrupt, q.Variant("dyn"), tmp_path / "out" / "x.onnx")
    with pytest.raises(ModelError, match="not found"):
        q.quantize(tmp_path / "missing.onnx", q.Variant("dyn"), tmp_path / "out" / "x.onnx")
    assert not (tmp_path / "out").exists() or files_in(tmp_path / "out") == []


def test_preprocess_writes_a_marked_model(matmul_model, tmp_path):
    result = q.preprocess(matmul_model, tmp_path / "pre.onnx")
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
    result = q.preprocess(matmul_model, tmp_path / "pre.onnx")
    assert (result.ok, result.path) == (False, str(matmul_model))
    assert "RuntimeError: shape inference exploded" in result.note and "using the original model" in result.note
    assert files_in(tmp_path) == ["mm.onnx"]


def test_quantize_all_makes_one_row_per_variant(matmul_model, tmp_path):
    variants = [q.Variant("dyn-s8"), q.Variant("dyn-u8", weight_type="QUInt8"),
                q.Variant("qdq", method="static"), q.Variant("none", op_types_to_quantize=["Conv"])]
    frame = q.quantize_all(matmul_model, variants, tmp_path / "out", calibration_feeds=matmul_feeds(n=3),
                           progress=False)
    assert list(frame.columns) == q.ROW_COLUMNS and list(frame["name"]) == ["dyn-s8", "dyn-u8", "qdq", "none"]
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
        q.quantize_all(matmul_model, [q.Variant("qdq", method="static")], tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="duplicate names"):
        q.quantize_all(matmul_model, [q.Variant("a"), q.Variant("a")], tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="input 'x'"):
        q.quantize_all(matmul_model, [q.Variant("a")], tmp_path / "out",
                       calibration_feeds=[{"x": np.zeros((1, 3), np.float32)}], progress=False)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Fidelity


def test_identical_arrays_are_perfect():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    result = q.fidelity(x, x.copy())
    assert result.cosine == pytest.approx(1.0) and result.snr_db == float("inf")
    assert (result.max_abs_error, result.mean_abs_error, result.length_diff, result.n_compared) == (0.0, 0.0, 0, 101)


def test_snr_of_known_noise_power():
    rng = np.random.default_rng(42)
    signal = rng.standard_normal(200_000)  # power 1
    noise = 0.1 * rng.standard_normal(200_000)  # power 0.01 -> 20 dB
    assert q.fidelity(signal, signal + noise).snr_db == pytest.approx(20.0, abs=0.1)
    assert q.fidelity(signal, signal + 0.01 * rng.standard_normal(200_000)).snr_db == pytest.approx(40.0, abs=0.1)


def test_cosine_and_errors_on_known_arrays():
    assert q.fidelity([1.0, 0.0], [0.0, 1.0]).cosine == pytest.approx(0.0)
    assert q.fidelity([1.0, 2.0], [-1.0, -2.0]).cosine == pytest.approx(-1.0)
    result = q.fidelity(np.array([[1.0, 2.0], [3.0, 4.0]]), [1.0, 2.5, 3.0, 2.0])  # flattened
    assert result.max_abs_error == pytest.approx(2.0) and result.mean_abs_error == pytest.approx(0.625)
    assert result.snr_db == pytest.approx(10 * np.log10(30 / 4.25))


def test_different_lengths_compare_on_the_common_prefix():
    reference = np.arange(1.0, 11.0)
    longer = q.fidelity(reference, np.arange(1.0, 13.0))
    assert (longer.n_compared, longer.length_diff, longer.snr_db) == (10, 2, float("inf"))
    shorter = q.fidelity(reference, reference[:7] * 2)
    assert (shorter.n_compared, shorter.length_diff) == (7, -3) and shorter.cosine == pytest.approx(1.0)


def test_fidelity_rejects_empty_or_broken_references_but_reports_broken_candidates():
    with pytest.raises(DataError, match="nothing to compare"):
        q.fidelity([], [1.0])
    with pytest.raises(DataError, match="1 non-finite"):
        q.fidelity([1.0, np.nan], [1.0, 2.0])
    result = q.fidelity([1.0, 2.0], [1.0, np.nan])
    assert np.isnan(result.cosine) and np.isnan(result.snr_db)


def test_compare_outputs_aggregates_mean_and_worst(matmul_model, tmp_path, tmp_store):
    variant = q.quantize(matmul_model, q.Variant("dyn", weight_type="QUInt8"), tmp_path / "v.onnx")
    comparison = q.compare_outputs(matmul_model, variant.path, matmul_feeds(n=5, seed=3))
    frame = comparison.frame()
    assert len(frame) == 5 and set(frame["output"]) == {"y"}
    assert comparison.cosine_worst == pytest.approx(frame["cosine"].min())
    assert comparison.cosine_mean == pytest.approx(frame["cosine"].mean())
    assert comparison.snr_db_worst == pytest.approx(frame["snr_db"].min())
    assert comparison.max_abs_error == pytest.approx(frame["max_abs_error"].max())
    run = tmp_store.start_run(target="unit")
    from saraikit.core.store import Trial

    tmp_store.record(run, Trial("quantize_fidelity", variant.variant.to_dict(), figures=q.fidelity_figures(comparison)))
    stored = tmp_store.results(run_id=run).set_index("metric")
    assert stored.loc["fidelity_cosine_worst", "value"] == pytest.approx(comparison.cosine_worst)
    assert stored.loc["fidelity_snr_db_mean", "unit"] == "dB" and stored.loc["fidelity_snr_db_mean", "n"] == 5
    with pytest.raises(ConfigError, match="feed 0, input 'x'"):
        q.compare_outputs(matmul_model, variant.path, [{"x": np.zeros((2, 256), np.int64)}])


# ---------------------------------------------------------------------------
# The real Piper voice


def piper_feeds(n_phonemes, seed, scales=q.PIPER_DETERMINISTIC_SCALES):
    """SYNTHETIC phoneme ids (valid ids < 256, no meaning); real phonemes come from the TTS front end."""
    ids = np.random.default_rng(seed).integers(1, 150, (1, n_phonemes)).astype(np.int64)
    return {"input": ids, "input_lengths": np.array([n_phonemes], np.int64), "scales": np.array(scales, np.float32)}


@pytest.fixture(scope="module")
def piper(model_paths):
    return model_paths["piper-en_US-joe-medium"]


@pytest.mark.integration
def test_piper_is_deterministic_only_without_noise(piper):
    from saraikit.engines.sessions import build_ort_session

    session = build_ort_session(piper)
    quiet = piper_feeds(40, 0)
    assert np.array_equal(session.run(None, quiet)[0], session.run(None, quiet)[0])
    noisy = piper_feeds(40, 0, scales=(0.667, 1.0, 0.8))
    first, second = session.run(None, noisy)[0], session.run(None, noisy)[0]
    assert first.shape != second.shape or not np.array_equal(first, second)


@pytest.mark.integration
def test_piper_dynamic_int8_variants(piper, tmp_path):
    variants = [
        q.Variant("dynamic-s8"),
        q.Variant("dynamic-u8-keeplength", weight_type="QUInt8", nodes_to_exclude=q.PIPER_LENGTH_PATH),
    ]
    frame = q.quantize_all(piper, variants, tmp_path, progress=False).set_index("name")
    assert frame["ok"].all(), frame["reason"].to_dict()
    # Observed: 0.296 and 0.62 of the 63 MB FP32 file (Conv weights dominate).
    assert frame.loc["dynamic-s8", "size_ratio"] < 0.35
    assert frame.loc["dynamic-u8-keeplength", "size_ratio"] < 0.7
    feeds = [piper_feeds(60, 0), piper_feeds(25, 1), piper_feeds(90, 2)]

    full = q.compare_outputs(piper, frame.loc["dynamic-s8", "path"], feeds)
    assert full.reference_deterministic is True
    # Durations move with the quantized encoder: lengths differ by a few percent (observed <= 7%),
    # so waveform cosine is low (observed ~0.2) although the model runs and speaks.
    rows = full.frame()
    assert (rows["length_diff"].abs() / (rows["n_compared"] + rows["length_diff"].clip(upper=0).abs())).max() < 0.15

    kept = q.compare_outputs(piper, frame.loc["dynamic-u8-keeplength", "path"], feeds)
    assert kept.length_diff_max == 0
    assert kept.cosine_worst > 0.85  # observed ~0.94


@pytest.mark.parametrize("calibration", ["Entropy", "Percentile"])
def test_histogram_calibration_accepts_feeds_of_different_lengths(matmul_model, tmp_path, calibration):
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((batch, 256)).astype(np.float32)} for batch in (1, 2, 3, 1)]
    variant = q.Variant(calibration.lower(), method="static", calibration=calibration)
    result = q.quantize(matmul_model, variant, tmp_path / "out.onnx", feeds)
    assert result.ok, result.error
    # Without the one-feed stride ORT fails to stack the differently shaped tensors.
    forced = q.Variant("all-at-once", method="static", calibration=calibration,
                       extra_options={"CalibStridedMinMax": len(feeds)})
    failed = q.quantize(matmul_model, forced, tmp_path / "forced.onnx", feeds)
    assert failed.status == "failed" and "inhomogeneous" in failed.error


# ---------------------------------------------------------------------------
# Judging variants on real inputs (notebook 01)


def test_variants_by_name_keeps_the_order_and_names_unknown_ones():
    chosen = q.variants_by_name(["dynamic-u8-keeplength", "dynamic-s8"])
    assert [v.name for v in chosen] == ["dynamic-u8-keeplength", "dynamic-s8"]
    assert chosen[0].weight_type == "QUInt8" and chosen[0].nodes_to_exclude == q.PIPER_LENGTH_PATH
    with pytest.raises(ConfigError, match=r"unknown variant name\(s\) \['dynamic-s4'\]"):
        q.variants_by_name(["dynamic-s8", "dynamic-s4"])
    with pytest.raises(ConfigError, match="list of names"):
        q.variants_by_name("dynamic-s8")


def test_compare_many_matches_compare_outputs(matmul_model, tmp_path):
    frame = q.quantize_all(matmul_model, q.variants_by_name(["dynamic-s8", "dynamic-u8"]), tmp_path, progress=False)
    paths = q.candidates(matmul_model, frame)
    assert list(paths) == ["fp32", "dynamic-s8", "dynamic-u8"] and paths["fp32"] == matmul_model
    feeds = matmul_feeds(n=3, seed=5)
    many = q.compare_many(matmul_model, {k: v for k, v in paths.items() if k != "fp32"}, feeds)
    for name in ("dynamic-s8", "dynamic-u8"):
        single = q.compare_outputs(matmul_model, paths[name], feeds)
        assert many[name].cosine_mean == pytest.approx(single.cosine_mean)
        assert many[name].snr_db_worst == pytest.approx(single.snr_db_worst)
        assert many[name].reference_deterministic is True and many[name].n_feeds == 3
    assert many["dynamic-s8"].cosine_mean < 1.0  # INT8 is not bit-exact


def bench_outcome(samples, ok=True):
    from saraikit.core import stats
    from saraikit.experiments import bench

    if not ok:
        return bench.BenchOutcome(False, None, None, "crashed: killed by signal 9", 7)
    raw = {"samples_ms": list(samples), "load_s": 0.25}
    return bench.BenchOutcome(True, stats.summarize(samples), raw, None, 3)


def test_latency_row_compares_with_the_baseline():
    rng = np.random.default_rng(0)
    base = list(100 + rng.normal(0, 2, 30))
    fast = list(60 + rng.normal(0, 2, 30))
    baseline = q.latency_row(bench_outcome(base), None)
    assert baseline["verdict"] == "baseline" and baseline["ratio"] == 1.0 and baseline["n"] == 30
    row = q.latency_row(bench_outcome(fast), base)
    assert row["verdict"] == "faster" and row["ratio"] == pytest.approx(np.median(fast) / np.median(base))
    assert row["ratio_ci_low"] < row["ratio"] < row["ratio_ci_high"] < 1
    assert row["p50_ci_low"] <= row["p50_ms"] <= row["p50_ci_high"] and row["load_s"] == 0.25
    failed = q.latency_row(bench_outcome(None, ok=False), base)
    assert failed["status"] == "failed" and "killed by signal 9" in failed["reason"]


def test_wer_table_pairs_each_candidate_with_fp32():
    ids = ["a", "b", "c", "d"]
    refs = ["turn on the lights", "set a timer", "what time is it", "call mom"]
    fp32 = q.wer_reports(ids, refs, refs, ["en"] * 4)
    worse = q.wer_reports(ids, refs, ["turn on the light", "set a timer", "what time is", "call mom"], ["en"] * 4)
    table = q.wer_table({"fp32": fp32, "int8": worse}).set_index("candidate")
    assert table.loc["fp32", "wer_pct"] == 0 and table.loc["fp32", "delta_wer_pp"] == 0
    assert table.loc["int8", "wer_pct"] == pytest.approx(100 * 2 / 13)  # 2 errors in 13 reference words
    assert table.loc["int8", "delta_wer_pp"] == pytest.approx(100 * 2 / 13)
    assert table.loc["int8", "delta_ci_low"] >= 0 and table.loc["int8", "n"] == 4
    mixed = q.wer_reports(["x", "y"], ["hola mundo", "hello world"], ["hola mundo", "hello"], ["es", "en"])
    assert list(mixed) == ["es", "en"] and mixed["en"].wer == 0.5 and mixed["es"].wer == 0.0
    with pytest.raises(DataError, match="no reports for the baseline"):
        q.wer_table({"int8": worse})
    with pytest.raises(DataError, match="must line up"):
        q.wer_reports(ids, refs, refs[:3], ["en"] * 4)


def decision_table(**overrides):
    """A baseline and candidates covering every branch of the rule (one row per situation)."""
    import pandas as pd

    base = dict(status="ok", reason=None, cosine=0.995, snr_db=20.0, length_diff=0, max_delta_wer_pp=0.0)
    rows = [
        dict(candidate="fp32", role="baseline", p50_ms=100, ratio=1.0, ratio_ci_low=1.0, ratio_ci_high=1.0,
             verdict="baseline"),
        dict(candidate="fast", role="variant", p50_ms=70, ratio=0.7, ratio_ci_low=0.65, ratio_ci_high=0.75,
             verdict="faster"),
        dict(candidate="fastest-but-wrong", role="variant", p50_ms=50, ratio=0.5, ratio_ci_low=0.45,
             ratio_ci_high=0.55, verdict="faster", max_delta_wer_pp=3.5),
        dict(candidate="drifting", role="variant", p50_ms=60, ratio=0.6, ratio_ci_low=0.55, ratio_ci_high=0.65,
             verdict="faster", cosine=0.9, snr_db=8.0),
        dict(candidate="slow", role="variant", p50_ms=130, ratio=1.3, ratio_ci_low=1.2, ratio_ci_high=1.4,
             verdict="slower", max_delta_wer_pp=float("nan")),
        dict(candidate="same", role="variant", p50_ms=98, ratio=0.98, ratio_ci_low=0.9, ratio_ci_high=1.05,
             verdict="no significant difference"),
        dict(candidate="new-length", role="variant", p50_ms=80, ratio=0.8, ratio_ci_low=0.75, ratio_ci_high=0.85,
             verdict="faster", cosine=0.2, snr_db=-2.0, length_diff=512),
        dict(candidate="unmeasured", role="variant", p50_ms=65, ratio=0.65, ratio_ci_low=0.6, ratio_ci_high=0.7,
             verdict="faster", max_delta_wer_pp=float("nan")),
        dict(candidate="skipped", role="variant", status="skipped", reason="already quantized", p50_ms=float("nan"),
             ratio=float("nan"), ratio_ci_low=float("nan"), ratio_ci_high=float("nan"), verdict="failed"),
        dict(candidate="ct2-int8", role="reference", p50_ms=40, ratio=0.4, ratio_ci_low=0.35, ratio_ci_high=0.45,
             verdict="faster"),
        dict(candidate="fp32-again", role="control", p50_ms=101, ratio=1.01, ratio_ci_low=0.97, ratio_ci_high=1.04,
             verdict="no significant difference"),
    ]
    frame = pd.DataFrame([{**base, **row} for row in rows])
    for candidate, values in overrides.items():
        for key, value in values.items():
            frame.loc[frame["candidate"] == candidate, key] = value
    return frame


def test_recommend_rejects_with_every_reason_and_picks_the_fastest_accepted():
    budget = q.QualityBudget(max_wer_increase_pp=1.0, min_cosine=0.98, min_snr_db=15.0)
    rec = q.recommend(decision_table(), budget, "encoder")
    decided = rec.table.set_index("candidate")
    assert rec.variant == "fast" and "Recommended for encoder: fast" in rec.message
    assert decided["decision"].to_dict() == {
        "fp32": "baseline", "fast": "recommended", "fastest-but-wrong": "rejected", "drifting": "rejected",
        "slow": "rejected", "same": "accepted", "new-length": "accepted", "unmeasured": "rejected",
        "skipped": "skipped", "ct2-int8": "reference", "fp32-again": "control"}
    assert decided.loc["fastest-but-wrong", "why"] == "WER +3.5 pp > budget 1 pp"
    assert decided.loc["drifting", "why"] == "cosine 0.9000 < 0.98; SNR 8.0 dB < 15 dB"
    assert decided.loc["slow", "why"].startswith("slower than FP32 (P50 ratio 1.30, CI 1.20-1.40)")
    assert decided.loc["slow", "why"].endswith("; WER not measured (already rejected)")
    assert decided.loc["unmeasured", "why"] == "WER not measured"
    assert "judged on WER only" in decided.loc["new-length", "why"]  # low cosine ignored: the length changed
    assert decided.loc["skipped", "why"] == "already quantized"


def test_prescreen_names_what_rejects_a_variant_before_its_wer():
    table = decision_table()
    reasons = q.prescreen(table, q.QualityBudget(1.0, 0.98, 15.0))
    by_name = dict(zip(table["candidate"], reasons))
    assert by_name["drifting"] == "cosine 0.9000 < 0.98; SNR 8.0 dB < 15 dB"
    assert by_name["slow"].startswith("slower than FP32")
    # WER decides these: no speed or fidelity reason (new-length is not comparable on fidelity).
    assert all(by_name[c] == "" for c in ("fp32", "fast", "fastest-but-wrong", "same", "new-length", "unmeasured",
                                          "skipped", "ct2-int8", "fp32-again"))
    assert q.prescreen(table, q.QualityBudget(1.0, None, None))[table["candidate"] == "drifting"].item() == ""
    with pytest.raises(DataError, match="lacks column"):
        q.prescreen(table.drop(columns=["cosine"]), q.QualityBudget())


def test_recommend_says_plainly_when_no_variant_is_faster():
    slower = {"fast": {"verdict": "no significant difference"}, "new-length": {"verdict": "slower"},
              "drifting": {"verdict": "no significant difference"}}
    rec = q.recommend(decision_table(**slower), q.QualityBudget(1.0, 0.98, 15.0), "piper")
    assert rec.variant is None
    assert rec.message.startswith("No INT8 variant of piper is faster than FP32 on this CPU; keep FP32")
    assert "2 accepted variant(s) only save file size" in rec.message  # fast and same
    assert "recommended" not in set(rec.table["decision"])


def test_recommend_without_fidelity_gates_judges_on_wer_alone():
    rec = q.recommend(decision_table(), q.QualityBudget(1.0, None, None), "piper")
    assert rec.variant == "drifting"  # cosine 0.9 passes when fidelity is not gated; faster than "fast"


def test_quality_budget_and_recommend_reject_bad_input():
    with pytest.raises(ConfigError, match="min_cosine"):
        q.QualityBudget(min_cosine=1.5)
    with pytest.raises(ConfigError, match="max_wer_increase_pp"):
        q.QualityBudget(max_wer_increase_pp=None)
    with pytest.raises(ConfigError, match="unknown key"):
        q.QualityBudget.from_dict({"max_wer": 1})
    table = decision_table()
    with pytest.raises(DataError, match="lacks column"):
        q.recommend(table.drop(columns=["verdict"]), q.QualityBudget(), "m")
    with pytest.raises(DataError, match="exactly one"):
        q.recommend(table[table["role"] != "baseline"], q.QualityBudget(), "m")
    with pytest.raises(DataError, match="roles must be"):
        q.recommend(table.replace({"role": {"reference": "engine"}}), q.QualityBudget(), "m")


@pytest.mark.integration
def test_ct2_encoder_bench_returns_what_bench_figures_needs(model_paths):
    from saraikit.core import stats
    from saraikit.experiments import bench, realinputs

    feed = realinputs.real_feeds("whisper-tiny.en", 1)[0]
    plan = {"warmup": 0, "min_iterations": 2, "min_duration_s": 0.0}
    raw = q.ct2_encoder_bench(model_paths["whisper-tiny.en"], feed, "int8", plan)
    assert len(raw["samples_ms"]) == 2 and all(s > 0 for s in raw["samples_ms"])
    assert raw["method"]["compute_type"] == "int8" and raw["input_shapes"] == {"mel": [1, 80, 3000]}
    metrics = {f.metric for f in bench.bench_figures(raw, stats.summarize(raw["samples_ms"]))}
    assert {"load_time", "latency_p50", "peak_rss"} <= metrics


@pytest.mark.integration
def test_task_metrics_run_on_real_speech(model_paths):
    from saraikit.engines import whisper_onnx
    from saraikit.experiments import realinputs
    from saraikit.engines.whisper import FasterWhisperSTT

    clip = next(c for c in realinputs.speech_clips("en", "evaluation") if c.reference == "ten of clubs")
    encoder = whisper_onnx.default_export("whisper-tiny.en")
    text = q.encoder_transcripts(model_paths["whisper-tiny.en"], encoder, [clip])[0]
    assert "club" in text.lower()
    asr = FasterWhisperSTT(model_paths["whisper-tiny.en"], language="en")
    asr.load()
    voice = model_paths["piper-en_US-joe-medium"]
    spoken = q.piper_round_trip(voice, ["Turning off the lights in the living room."], asr)[0]
    assert "living room" in spoken.lower()
