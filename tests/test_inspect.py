"""Tests for saraikit.models.inspect: the dispatch on the path (format readers have their own test files)."""

from __future__ import annotations

import pytest

from saraikit.core.errors import ModelError
from saraikit.models.inspect import inspect_model


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match="nope.onnx"):
        inspect_model(missing)


def test_unknown_format(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(ModelError, match=r"model\.pt.*unknown model format"):
        inspect_model(path)
