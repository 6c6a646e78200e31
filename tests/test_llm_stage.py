"""The llama.cpp LLM stage."""

from __future__ import annotations

import pytest

from saraikit.core.errors import ConfigError, DataError
from saraikit.engines.llm_stage import LlamaLLM
from saraikit.engines.llama import LlamaConfig

from stage_helpers import assert_well_formed


def test_constructor_checks():
    with pytest.raises(ConfigError, match="max_tokens"):
        LlamaLLM("unused.gguf", max_tokens=0)


@pytest.mark.integration
def test_llama_streams_tokens_deterministically(model_paths):
    stage = LlamaLLM(model_paths["gemma-3-270m-q4_k_m"], LlamaConfig(n_ctx=256, n_threads=1), max_tokens=8)
    stage.load()
    stream = stage.stream("The capital of France is")
    pieces = list(stream)
    result = stream.result
    assert 1 <= len(pieces) <= 8 and result.value == "".join(pieces)
    assert result.meta["prompt_tokens"] > 1 and result.meta["finish_reason"] in ("length", "stop")
    names = [e.name for e in result.events]
    assert names[:2] == ["start", "first_output"] and names[-1] == "end"
    assert names.count("output") == len(pieces) - 1
    assert_well_formed(result, stage.name)
    assert stage.run("The capital of France is").value == result.value  # temperature 0, cache reset


@pytest.mark.integration
def test_llama_stop_and_prompt_builder(model_paths):
    stage = LlamaLLM(model_paths["gemma-3-270m-q4_k_m"], LlamaConfig(n_ctx=256, n_threads=1), max_tokens=16,
                     stop=["\n"], prompt_builder=lambda text: f"Q: {text}\nA:")
    stage.load()
    result = stage.run("What is two plus two?")
    assert "\n" not in result.value
    assert result.meta["prompt_tokens"] > 8  # the built prompt, not the bare question
    with pytest.raises(DataError, match="expected text"):
        stage.run(42)
