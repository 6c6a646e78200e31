"""Calibration feeds checked against the model, and the reader ORT pulls them from."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError
from saraikit.experiments.quantize.calibration import CalibrationReader

from helpers import tiny_matmul_model
from quantize_models import matmul_feeds


@pytest.fixture()
def matmul_model(tmp_path):
    return tiny_matmul_model(tmp_path / "mm.onnx", size=256)


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
        CalibrationReader(matmul_model, feeds)


def test_calibration_reader_serves_each_feed_once_per_pass(matmul_model):
    feeds = matmul_feeds(n=4)
    reader = CalibrationReader(matmul_model, feeds)
    assert [f["x"][0, 0] for f in reader] == [f["x"][0, 0] for f in feeds]
    assert reader.get_next() is None and len(reader) == 4
    reader.set_range(1, 3)
    assert [f["x"][0, 0] for f in reader] == [f["x"][0, 0] for f in feeds[1:3]]
    reader.rewind()
    assert len(list(reader)) == 4

