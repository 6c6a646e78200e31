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
    assert names[:3] == ["start", "prompt", "first_output"] and names[-1] == "end"
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


@pytest.mark.integration
def test_pipeline_stage_and_llm_protocol_start_answers_the_same_way(model_paths):
    """Same prompts, same loaded model, interleaved: the stage's and the protocol's TTFT agree.

    Agreement is equivalence, not "the CI contains 1": that check fails one run in twenty by chance, and
    whenever the stage's few microseconds of event bookkeeping become detectable (a CI run saw 1.00-1.04).
    The paired 95% CI must lie within 10% of 1; a stage that kept the previous answer's context (a much
    shorter prompt evaluation) or paid another prompt's cost would fall outside it."""
    from saraikit.core.spread import ProcessSamples, compare_paired
    from saraikit.data.prompts import PROMPTS, few_shot_prompt
    from saraikit.experiments.llm.generation import generate_once

    stage = LlamaLLM(model_paths["gemma-3-270m-q4_k_m"], LlamaConfig(n_ctx=512, n_threads=2, n_threads_batch=2),
                     max_tokens=2)
    stage.load()
    prompts = [few_shot_prompt(q, lang) for lang in ("en", "es") for q in PROMPTS[lang][:4]]
    stage.run(prompts[0].text)  # one warm-up each, not timed
    generate_once(stage.llm, prompts[0], max_tokens=2)
    protocol, pipeline = [], []
    for i, prompt in enumerate(prompts * 2):
        order = ("protocol", "stage") if i % 2 == 0 else ("stage", "protocol")
        for who in order:
            if who == "protocol":
                protocol.append(ProcessSamples([generate_once(stage.llm, prompt, max_tokens=2).ttft_ms], i + 1))
            else:
                stage.stop = list(prompt.stop)
                result = stage.run(prompt.text)
                pipeline.append(ProcessSamples([result.seconds("prompt", "first_output") * 1000], i + 1))
    paired = compare_paired(protocol, pipeline)
    assert 0.9 <= paired.ci_low and paired.ci_high <= 1.1, paired
