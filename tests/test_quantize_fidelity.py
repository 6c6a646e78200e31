"""Fidelity of outputs against FP32: metrics on known arrays, aggregation over feeds, several variants at once."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError, DataError
from saraikit.experiments.quantize.fidelity import compare_many, compare_outputs, fidelity, fidelity_figures
from saraikit.experiments.quantize.recommend import candidates
from saraikit.experiments.quantize.run import quantize, quantize_all
from saraikit.engines.quant_variants import Variant, variants_by_name

from helpers import tiny_matmul_model
from quantize_models import matmul_feeds


@pytest.fixture()
def matmul_model(tmp_path):
    return tiny_matmul_model(tmp_path / "mm.onnx", size=256)


def test_identical_arrays_are_perfect():
    x = np.linspace(-1, 1, 101, dtype=np.float32)
    result = fidelity(x, x.copy())
    assert result.cosine == pytest.approx(1.0) and result.snr_db == float("inf")
    assert (result.max_abs_error, result.mean_abs_error, result.length_diff, result.n_compared) == (0.0, 0.0, 0, 101)


def test_snr_of_known_noise_power():
    rng = np.random.default_rng(42)
    signal = rng.standard_normal(200_000)  # power 1
    noise = 0.1 * rng.standard_normal(200_000)  # power 0.01 -> 20 dB
    assert fidelity(signal, signal + noise).snr_db == pytest.approx(20.0, abs=0.1)
    assert fidelity(signal, signal + 0.01 * rng.standard_normal(200_000)).snr_db == pytest.approx(40.0, abs=0.1)


def test_cosine_and_errors_on_known_arrays():
    assert fidelity([1.0, 0.0], [0.0, 1.0]).cosine == pytest.approx(0.0)
    assert fidelity([1.0, 2.0], [-1.0, -2.0]).cosine == pytest.approx(-1.0)
    result = fidelity(np.array([[1.0, 2.0], [3.0, 4.0]]), [1.0, 2.5, 3.0, 2.0])  # flattened
    assert result.max_abs_error == pytest.approx(2.0) and result.mean_abs_error == pytest.approx(0.625)
    assert result.snr_db == pytest.approx(10 * np.log10(30 / 4.25))


def test_different_lengths_compare_on_the_common_prefix():
    reference = np.arange(1.0, 11.0)
    longer = fidelity(reference, np.arange(1.0, 13.0))
    assert (longer.n_compared, longer.length_diff, longer.snr_db) == (10, 2, float("inf"))
    shorter = fidelity(reference, reference[:7] * 2)
    assert (shorter.n_compared, shorter.length_diff) == (7, -3) and shorter.cosine == pytest.approx(1.0)


def test_fidelity_rejects_empty_or_broken_references_but_reports_broken_candidates():
    with pytest.raises(DataError, match="nothing to compare"):
        fidelity([], [1.0])
    with pytest.raises(DataError, match="1 non-finite"):
        fidelity([1.0, np.nan], [1.0, 2.0])
    result = fidelity([1.0, 2.0], [1.0, np.nan])
    assert np.isnan(result.cosine) and np.isnan(result.snr_db)


def test_compare_outputs_aggregates_mean_and_worst(matmul_model, tmp_path, tmp_store):
    variant = quantize(matmul_model, Variant("dyn", weight_type="QUInt8"), tmp_path / "v.onnx")
    comparison = compare_outputs(matmul_model, variant.path, matmul_feeds(n=5, seed=3))
    frame = comparison.frame()
    assert len(frame) == 5 and set(frame["output"]) == {"y"}
    assert comparison.cosine_worst == pytest.approx(frame["cosine"].min())
    assert comparison.cosine_mean == pytest.approx(frame["cosine"].mean())
    assert comparison.snr_db_worst == pytest.approx(frame["snr_db"].min())
    assert comparison.max_abs_error == pytest.approx(frame["max_abs_error"].max())
    run = tmp_store.start_run(target="unit")
    from saraikit.core.store import Trial

    tmp_store.record(run, Trial("quantize_fidelity", variant.variant.to_dict(), figures=fidelity_figures(comparison)))
    stored = tmp_store.results(run_id=run).set_index("metric")
    assert stored.loc["fidelity_cosine_worst", "value"] == pytest.approx(comparison.cosine_worst)
    assert stored.loc["fidelity_snr_db_mean", "unit"] == "dB" and stored.loc["fidelity_snr_db_mean", "n"] == 5
    with pytest.raises(ConfigError, match="feed 0, input 'x'"):
        compare_outputs(matmul_model, variant.path, [{"x": np.zeros((2, 256), np.int64)}])


def test_compare_many_matches_compare_outputs(matmul_model, tmp_path):
    frame = quantize_all(matmul_model, variants_by_name(["dynamic-s8", "dynamic-u8"]), tmp_path, progress=False)
    paths = candidates(matmul_model, frame)
    assert list(paths) == ["fp32", "dynamic-s8", "dynamic-u8"] and paths["fp32"] == matmul_model
    feeds = matmul_feeds(n=3, seed=5)
    many = compare_many(matmul_model, {k: v for k, v in paths.items() if k != "fp32"}, feeds)
    for name in ("dynamic-s8", "dynamic-u8"):
        single = compare_outputs(matmul_model, paths[name], feeds)
        assert many[name].cosine_mean == pytest.approx(single.cosine_mean)
        assert many[name].snr_db_worst == pytest.approx(single.snr_db_worst)
        assert many[name].reference_deterministic is True and many[name].n_feeds == 3
    assert many["dynamic-s8"].cosine_mean < 1.0  # INT8 is not bit-exact

