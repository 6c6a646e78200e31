"""Tests for saraikit.models.ct2_file: model.bin read from a tiny Whisper written by
CTranslate2 itself, folder facts through inspect_model, then the real Whisper models."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ModelError
from saraikit.models.ct2_file import read_ct2_variables
from saraikit.models.inspect import inspect_model

from model_files import FAKE, WHISPER_TINY_EN, make_fake_whisper


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_fake_whisper(tmp_path_factory.mktemp("fake") / "whisper-fake")


def test_read_ct2_variables_returns_stored_values_and_settings(fake):
    variables = read_ct2_variables(fake / "model.bin", "encoder/")
    assert variables.spec == "WhisperSpec"
    assert all(name.startswith("encoder/") for name in variables.arrays)
    assert variables.arrays["encoder/num_heads"].dtype == np.int16
    assert int(variables.arrays["encoder/num_heads"]) == FAKE["heads"]
    conv1 = variables.arrays["encoder/conv1/weight"]
    assert conv1.dtype == np.float16 and conv1.shape == (16, 8, 3)
    # The same random draw the builder made, rounded to float16 by CTranslate2's writer.
    expected = (np.random.default_rng(0).standard_normal((16, 8, 3)).astype(np.float32) * 0.3).astype(np.float16)
    assert np.array_equal(conv1, expected)


def test_ctranslate2_folder_without_model_bin(tmp_path):
    folder = tmp_path / "ct2"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"ct2.*model\.bin"):
        inspect_model(folder)


@pytest.mark.integration
def test_whisper_tiny_en():
    info = inspect_model(WHISPER_TINY_EN)
    d = info.details
    assert info.format == "ctranslate2" and d["model_type"] == "whisper"
    assert d["spec"] == "WhisperSpec" and d["binary_version"] == 6
    assert d["d_model"] == 384 and d["encoder_layers"] == 4 and d["decoder_layers"] == 4
    assert d["encoder_heads"] == 6 and d["n_mels"] == 80
    assert d["weight_dtype"] == "float16"
    assert d["vocabulary_size"] == 51864 and d["multilingual"] is False and d["language"] == "en"


@pytest.mark.integration
def test_whisper_base(whisper_base_dir):
    d = inspect_model(whisper_base_dir).details
    assert d["d_model"] == 512 and d["encoder_layers"] == 6 and d["decoder_layers"] == 6
    assert d["encoder_heads"] == 8
    assert d["vocabulary_size"] == 51865 and d["multilingual"] is True and d["languages"] == 99
    assert d["weight_dtype"] == "float16" and d["sample_rate"] == 16000
