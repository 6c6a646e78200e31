"""Quantization recipes: validation, defaults, the standard and named sets; Piper's deterministic scales."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError
from saraikit.engines.quant_variants import PIPER_LENGTH_PATH, Variant, standard_variants, variants_by_name

from quantize_models import piper_feeds


@pytest.fixture(scope="module")
def piper(model_paths):
    return model_paths["piper-en_US-joe-medium"]


def test_variant_defaults_follow_the_method():
    dynamic = Variant("d")
    assert (dynamic.activation_type, dynamic.quant_format, dynamic.calibration) == ("QUInt8", "QOperator", None)
    static = Variant("s", method="STATIC", weight_type="qint8")
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
        Variant("v", **kwargs)


def test_variant_name_must_be_a_file_name_and_dict_round_trips():
    with pytest.raises(ConfigError, match="file name"):
        Variant("a/b")
    variant = Variant("v", method="static", op_types_to_exclude=["Conv"], extra_options={"ActivationSymmetric": True})
    again = Variant.from_dict(variant.to_dict())
    assert again == variant and again.key() == variant.key() and again.op_types_to_exclude == ("Conv",)
    assert Variant("v", per_channel=True).key() != Variant("v").key()
    with pytest.raises(ConfigError, match="typo"):
        Variant.from_dict({"name": "v", "typo": 1})


def test_standard_variants_cover_dynamic_and_static():
    variants = standard_variants()
    names = [v.name for v in variants]
    assert len(names) == len(set(names)) == 10
    assert {v.calibration for v in variants if v.method == "static"} == {"MinMax", "Entropy", "Percentile"}
    assert {v.activation_type for v in variants if v.method == "static"} == {"QInt8", "QUInt8"}
    assert all(v.weight_type == "QInt8" and v.quant_format == "QDQ" for v in variants if v.method == "static")
    assert any(v.op_types_to_exclude == ("Conv", "ConvTranspose") for v in variants if v.method == "dynamic")
    assert {v.method for v in standard_variants(include_static=False)} == {"dynamic"}


def test_variants_by_name_keeps_the_order_and_names_unknown_ones():
    chosen = variants_by_name(["dynamic-u8-keeplength", "dynamic-s8"])
    assert [v.name for v in chosen] == ["dynamic-u8-keeplength", "dynamic-s8"]
    assert chosen[0].weight_type == "QUInt8" and chosen[0].nodes_to_exclude == PIPER_LENGTH_PATH
    with pytest.raises(ConfigError, match=r"unknown variant name\(s\) \['dynamic-s4'\]"):
        variants_by_name(["dynamic-s8", "dynamic-s4"])
    with pytest.raises(ConfigError, match="list of names"):
        variants_by_name("dynamic-s8")


@pytest.mark.integration
def test_piper_is_deterministic_only_without_noise(piper):
    from saraikit.engines.ort import build_ort_session

    session = build_ort_session(piper)
    quiet = piper_feeds(40, 0)
    assert np.array_equal(session.run(None, quiet)[0], session.run(None, quiet)[0])
    noisy = piper_feeds(40, 0, scales=(0.667, 1.0, 0.8))
    first, second = session.run(None, noisy)[0], session.run(None, noisy)[0]
    assert first.shape != second.shape or not np.array_equal(first, second)

