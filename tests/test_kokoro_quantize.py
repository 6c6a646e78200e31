"""Kokoro-82M in the inventory, quantization (01) and grid-search (02) paths: an ONNX model like the others."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from saraikit.core.hardware import target_slug
from saraikit.engines.ort import OrtConfig, build_ort_session
from saraikit.experiments import grid, realinputs
from saraikit.experiments.quantize import recommend, variants
from saraikit.experiments.quantize import run as quant_run
from saraikit.models import inventory

pytestmark = pytest.mark.integration


def test_inventory_says_kokoro_is_int8_already(provisioned):
    table = inventory.inventory_table(inventory.inspect_all()).set_index("name")
    row = table.loc["kokoro-82m"]
    assert bool(row["quantized"]) is True and row["format"] == "onnx" and row["n_inputs"] == 3


def test_quantization_reports_already_quantized_instead_of_requantizing(model_paths, tmp_path):
    names = ["dynamic-s8", "dynamic-u8", "static-qdq-s8s8-minmax"]
    calibration = realinputs.real_feeds("kokoro-82m", 1, "calibration")  # 01 passes them for static variants
    frame = quant_run.quantize_all(model_paths["kokoro-82m"], variants.variants_by_name(names), tmp_path,
                                   calibration_feeds=calibration, progress=False)
    assert frame["name"].tolist() == names and set(frame["status"]) == {"skipped"} and not frame["ok"].any()
    assert frame["reason"].str.startswith("already quantized (384 quantization nodes: ConvInteger 87").all()
    assert frame["path"].isna().all() and list(tmp_path.iterdir()) == []  # nothing pre-processed or written
    assert frame.attrs["preprocess"]["note"].startswith("not pre-processed: already quantized")
    # 01's next steps: the baseline is its only candidate, and the message says why there is no variant
    assert list(recommend.candidates(model_paths["kokoro-82m"], frame)) == ["fp32"]
    table = pd.DataFrame([{"candidate": "fp32", "role": "baseline", "status": "ok", "reason": None, "p50_ms": 900.0,
                           "ratio": 1.0, "ratio_ci_low": 1.0, "ratio_ci_high": 1.0, "verdict": "baseline",
                           "cosine": np.nan, "snr_db": np.nan, "length_diff": 0, "max_delta_wer_pp": np.nan}])
    rec = recommend.recommend(table, recommend.QualityBudget(), "kokoro-82m")
    assert rec.variant is None and rec.message.startswith("No INT8 variant of kokoro-82m was made")


def test_real_feeds_run_in_the_model(model_paths):
    assert realinputs.recipe("kokoro-82m").kind == "kokoro"
    assert realinputs.kokoro_texts(3) == [("es", realinputs.SENTENCES_ES[0]), ("es", realinputs.SENTENCES_ES[4]),
                                          ("en", realinputs.SENTENCES_EN[0])]
    assert {lang for lang, _ in realinputs.kokoro_texts(2, "calibration")} == {"en"}
    feeds = realinputs.real_feeds("kokoro-82m", 2)
    tokens = feeds[0]["tokens"]
    assert tokens.dtype == np.int64 and tokens[0, 0] == tokens[0, -1] == 0 and 20 < tokens.shape[1] <= 512
    assert feeds[0]["style"].shape == (1, 256) and feeds[0]["speed"].tolist() == [1.0]
    session = build_ort_session(model_paths["kokoro-82m"], OrtConfig(intra_op_num_threads=2))
    audio = session.run(None, feeds[0])[0]
    assert audio.ndim == 1 and audio.size / 24000 > 1.0  # "Claro, he puesto una alarma ..." is seconds long


def test_grid_search_measures_kokoro_in_a_fresh_process(model_paths, tmp_store):
    feeds = realinputs.real_feeds("kokoro-82m", 1)[0]
    run = tmp_store.start_run(target="unit")
    measure = grid.isolated_measure(str(model_paths["kokoro-82m"]), tmp_store, run, "kokoro-82m", "sha",
                                    target_slug("unit"), feeds=feeds)
    plan = {"warmup": 1, "min_iterations": 2, "min_duration_s": 0.0}
    result = grid.exhaustive([{"intra_op_num_threads": 2}], measure, plan, processes=1)
    table = result.table()
    assert result.trials_run == 1 and len(table) == 1 and table["n"].tolist() == [2]
    assert table["p50_ms"].iloc[0] > 0
