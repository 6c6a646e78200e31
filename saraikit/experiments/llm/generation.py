"""One streamed answer per prompt, timed token by token.

Decisions:

- Greedy (temperature 0) with a fixed seed by default, from a fresh context
  every time (``saraikit.engines.llama.fresh_context``: no prefix reuse, no
  leftover KV cache), then ``llm.generate(..., reset=False)`` so the binding
  does no prefix matching. llama.cpp's ``n_p_eval`` counts the prompt tokens
  really evaluated, which is how the tests check this.
- TTFT runs from the prompt string to the first sampled token (tokenize +
  prompt evaluation + first sample); every later token's arrival time is
  recorded too.
- The last generated token is never fed back to the model, so a generation
  of ``n`` tokens costs ``n - 1`` single-token decodes (``perf.n_eval``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from saraikit.core.config import check_count
from saraikit.core.errors import ConfigError
from saraikit.data.prompts import Prompt, build_prompt, check_question
from saraikit.engines.llama import LlamaPerf, fresh_context, read_perf
from saraikit.experiments.llm.load import DEFAULT_SEED


@dataclass
class Generation:
    """One streamed answer and its timings (all ms, from the moment the prompt string was given)."""

    text: str  # the answer, stripped, without the stop string or end-of-generation token
    n_prompt_tokens: int
    n_generated: int  # every token the model produced, including an EOS or the tokens of the stop string
    ttft_ms: float
    total_ms: float
    token_times_ms: list[float]  # arrival time of each generated token; [0] is the TTFT
    stop_reason: str  # "stop" (a stop string), "eos" (end-of-generation token) or "length" (max_tokens)
    perf: LlamaPerf  # llama.cpp's counters for this generation alone

    @property
    def inter_token_ms(self) -> list[float]:
        return np.diff(self.token_times_ms).tolist()

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first, per second of the time after the first (NaN with one token)."""
        if self.n_generated < 2:
            return math.nan
        return (self.n_generated - 1) / ((self.token_times_ms[-1] - self.ttft_ms) / 1000)


def _as_prompt(prompt: Prompt | str, stop: Sequence[str] | None) -> Prompt:
    if isinstance(prompt, str):
        prompt = Prompt(prompt)
    if not isinstance(prompt, Prompt):
        raise ConfigError(f"generate_once: prompt must be a Prompt or str, got {type(prompt).__name__}")
    check_question(prompt.text, "generate_once")
    if stop is not None:
        prompt = dataclasses.replace(prompt, stop=tuple(stop))
    if any(not s for s in prompt.stop):
        raise ConfigError(f"generate_once: empty stop string in {prompt.stop!r}")
    return prompt


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """``text`` up to the first stop string, or None when there is none."""
    cuts = [text.index(stop) for stop in stops if stop in text]
    return text[: min(cuts)] if cuts else None


def generate_once(llm, prompt: Prompt | str, max_tokens: int = 48, temperature: float = 0.0,
                  seed: int = DEFAULT_SEED, stop: Sequence[str] | None = None) -> Generation:
    """Stream one answer to ``prompt`` from a fresh context (see the module docstring).

    A plain string is sent as it is, with no stop strings unless ``stop`` is given.
    """
    import llama_cpp

    prompt = _as_prompt(prompt, stop)
    check_count(max_tokens, "max_tokens", "generate_once")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ConfigError(f"generate_once: temperature must be >= 0 (0 = greedy), got {temperature!r}")
    vocab = llm._model.vocab
    fresh_context(llm)
    llm.set_seed(seed)

    start = time.perf_counter_ns()
    prompt_tokens = llm.tokenize(prompt.text.encode("utf-8"), add_bos=prompt.add_bos, special=prompt.special)
    if len(prompt_tokens) + max_tokens > llm.n_ctx():
        raise ConfigError(f"generate_once: {len(prompt_tokens)} prompt tokens + max_tokens={max_tokens} "
                          f"exceed n_ctx={llm.n_ctx()}")
    completion: list[int] = []
    token_times: list[float] = []
    text, stop_reason = "", "length"
    tokens = llm.generate(prompt_tokens, temp=float(temperature), repeat_penalty=1.0, reset=False)
    try:
        for token in tokens:
            token_times.append((time.perf_counter_ns() - start) / 1e6)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                stop_reason = "eos"
                break
            completion.append(token)
            text = llm.detokenize(completion, prev_tokens=prompt_tokens).decode("utf-8", errors="ignore")
            cut = _cut_at_stop(text, prompt.stop)
            if cut is not None:
                text, stop_reason = cut, "stop"
                break
            if len(token_times) == max_tokens:
                break
    finally:
        tokens.close()
    total_ms = (time.perf_counter_ns() - start) / 1e6
    return Generation(text.strip(), len(prompt_tokens), len(token_times), token_times[0], total_ms,
                      token_times, stop_reason, read_perf(llm))


def run_prompts(llm, prompts: Sequence[str], language: str = "en", max_tokens: int = 48,
                repetitions: int = 1, warmup: int = 1, temperature: float = 0.0) -> pd.DataFrame:
    """Answer each question (wrapped by :func:`~saraikit.data.prompts.build_prompt`) and tabulate latency and text.

    ``warmup`` untimed generations of the first question run first (the first
    call after loading pays for page faults on the mapped weights).
    """
    if isinstance(prompts, str) or not prompts:
        raise ConfigError("run_prompts: prompts must be a non-empty list of questions")
    check_count(repetitions, "repetitions", "run_prompts")
    check_count(warmup, "warmup", "run_prompts", minimum=0)
    built = [build_prompt(llm, question, language) for question in prompts]
    for _ in range(warmup):
        generate_once(llm, built[0], max_tokens, temperature)
    rows = []
    for repetition in range(repetitions):
        for index, (question, prompt) in enumerate(zip(prompts, built)):
            gen = generate_once(llm, prompt, max_tokens, temperature)
            rows.append({
                "language": language, "prompt_index": index, "repetition": repetition,
                "question": question, "prompt_kind": prompt.kind, "temperature": float(temperature),
                "n_prompt_tokens": gen.n_prompt_tokens, "n_generated": gen.n_generated,
                "ttft_ms": gen.ttft_ms, "total_ms": gen.total_ms,
                "decode_tokens_per_s": gen.decode_tokens_per_s, "stop_reason": gen.stop_reason,
                "llama_prompt_eval_ms": gen.perf.t_p_eval_ms, "llama_n_p_eval": gen.perf.n_p_eval,
                "answer": gen.text,
            })
    return pd.DataFrame(rows)
