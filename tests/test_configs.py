"""Engine configs share one strict loader: round trip, stable key, unknown keys, dispatch on kind."""

from __future__ import annotations

import dataclasses
import json

import pytest

from saraikit.core.errors import ConfigError
from saraikit.engines.configs import config_from_dict
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.llama import LlamaConfig
from saraikit.engines.ort import OrtConfig


@pytest.mark.parametrize("config_type", [OrtConfig, LlamaConfig, Ct2WhisperConfig])
def test_to_dict_round_trips_and_key_is_stable(config_type):
    config = config_type()
    assert config_type.from_dict(config.to_dict()) == config
    assert config.key() == config_type.from_dict(json.loads(json.dumps(config.to_dict()))).key()
    assert config.key().startswith(config_type.KIND + "-")


@pytest.mark.parametrize(
    ("config_type", "expected_names"),
    [
        (OrtConfig, ["graph_optimization_level", "intra_op_num_threads", "session_config_entries"]),
        (LlamaConfig, ["n_ctx", "n_threads", "use_mmap"]),
        (Ct2WhisperConfig, ["compute_type", "cpu_threads", "inter_threads"]),
    ],
)
def test_unknown_key_lists_valid_keys_sorted(config_type, expected_names):
    with pytest.raises(ConfigError) as caught:
        config_type.from_dict({"num_threads": 2})
    message = str(caught.value)
    assert "'num_threads'" in message
    listed = message.split("valid keys: ")[1].split(", ")
    assert listed == sorted(f.name for f in dataclasses.fields(config_type))
    assert all(name in listed for name in expected_names)


def test_from_dict_rejects_a_non_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        OrtConfig.from_dict([("intra_op_num_threads", 1)])


def test_config_from_dict_dispatches_on_kind():
    assert config_from_dict("ort", {"intra_op_num_threads": 1}) == OrtConfig(intra_op_num_threads=1)
    assert config_from_dict("llama", {"n_ctx": 256, "n_batch": 256, "n_ubatch": 256}).n_ctx == 256
    assert config_from_dict("ct2", {"compute_type": "int8"}) == Ct2WhisperConfig(compute_type="int8")
    with pytest.raises(ConfigError) as caught:
        config_from_dict("tflite", {})
    assert all(kind in str(caught.value) for kind in ("ct2", "llama", "ort"))
