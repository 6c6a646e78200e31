"""llama-bench's ``pp`` and ``tg`` tests through the Python binding, checked against llama.cpp's own clock.

Decisions:

- ``pp<n>`` evaluates a fixed sequence of ``n`` token ids in one ``llm.eval``
  call (split into ``n_batch`` chunks as llama-bench does); ``tg<n>`` decodes
  ``n`` tokens one ``llm.eval([token])`` at a time, the first being BOS,
  exactly like llama-bench's ``test_gen``. No sampling in either (llama-bench
  does not sample). The token ids are seeded random ids, as in llama-bench;
  they affect nothing but which embedding rows are read.
- Results are tokens/s per repetition, reported as mean ± std (ddof=1) like
  llama-bench, after ``warmup`` discarded repetitions.
- Every timed eval is followed by ``llama_synchronize`` (llama-bench does the
  same): without it back-to-back single-token evals would be merged into one
  "prompt" entry of llama.cpp's counters.
- llama.cpp's perf counters are reset before each timed repetition and read
  after, so for the *same* decode calls there is our wall clock (through the
  binding) and llama.cpp's internal time; their ratio is the binding's
  overhead (:func:`compare_with_llama_cpp`). This compares against llama.cpp's
  measurement, not against a llama-bench run. A repetition whose counted
  tokens differ from the test's is an error: the protocol no longer matches
  the llama.cpp version.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from saraikit.core.config import check_count
from saraikit.core.errors import ConfigError, MeasurementError
from saraikit.engines.llama import fresh_context, raw_context, read_perf, reset_perf

BINDING_TOLERANCE = 0.03  # |binding t/s / llama.cpp t/s - 1| counted as "the same"


@dataclass
class Throughput:
    """One llama-bench-style test: per-repetition wall times and llama.cpp's times for the same calls."""

    test: str  # "pp" (prompt processing) or "tg" (text generation)
    n_tokens: int
    depth: int  # tokens already in the context before the timed part (llama-bench -d)
    n_threads: int
    n_threads_batch: int
    wall_ms: list[float]
    llama_ms: list[float]
    warmup: int

    @property
    def name(self) -> str:
        return f"{self.test}{self.n_tokens}" + (f" @ d{self.depth}" if self.depth else "")

    @property
    def n(self) -> int:
        return len(self.wall_ms)

    @property
    def tokens_per_s(self) -> list[float]:
        return [self.n_tokens / (ms / 1000) for ms in self.wall_ms]

    @property
    def llama_tokens_per_s(self) -> list[float]:
        return [self.n_tokens / (ms / 1000) for ms in self.llama_ms]

    @property
    def mean_tokens_per_s(self) -> float:
        return float(np.mean(self.tokens_per_s))

    @property
    def std_tokens_per_s(self) -> float:
        return float(np.std(self.tokens_per_s, ddof=1)) if self.n > 1 else math.nan

    def format(self) -> str:
        return (f"{self.name}: {self.mean_tokens_per_s:.2f} ± {self.std_tokens_per_s:.2f} t/s "
                f"(n={self.n}, threads={self.n_threads}/{self.n_threads_batch})")


def _bench_tokens(llm, count: int, seed: int) -> list[int]:
    """BOS (when the model adds one) then seeded random token ids, like llama-bench."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, llm.n_vocab(), size=count).tolist()
    if llm._model.add_bos_token():
        tokens[0] = llm.token_bos()
    return tokens


def _eval_synced(llm, tokens: list[int]) -> None:
    import llama_cpp

    llm.eval(tokens)
    llama_cpp.llama_synchronize(raw_context(llm))


def bench_test(llm, test: str, n_tokens: int, repetitions: int, warmup: int, depth: int, seed: int) -> Throughput:
    where = f"bench_{test}"
    check_count(n_tokens, "the token count", where, minimum=2 if test == "pp" else 1)
    check_count(repetitions, "repetitions", where)
    check_count(warmup, "warmup", where, minimum=0)
    check_count(depth, "depth", where, minimum=0)
    if depth + n_tokens > llm.n_ctx():
        raise ConfigError(f"{where}: depth {depth} + {n_tokens} tokens exceed n_ctx={llm.n_ctx()}")
    tokens = _bench_tokens(llm, depth + n_tokens, seed)
    timed_tokens = tokens[depth:]
    wall_ms, llama_ms = [], []
    for repetition in range(warmup + repetitions):
        fresh_context(llm)
        if depth:
            _eval_synced(llm, tokens[:depth])
            reset_perf(llm)
        start = time.perf_counter_ns()
        if test == "pp":
            _eval_synced(llm, timed_tokens)
        else:
            for token in timed_tokens:
                _eval_synced(llm, [token])
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        perf = read_perf(llm)
        counted, counted_ms = (perf.n_p_eval, perf.t_p_eval_ms) if test == "pp" else (perf.n_eval, perf.t_eval_ms)
        if counted != n_tokens:
            raise MeasurementError(f"{where}: llama.cpp counted {counted} tokens for a {n_tokens}-token test "
                                   f"({perf}); the protocol no longer matches this llama.cpp version")
        if repetition >= warmup:
            wall_ms.append(elapsed_ms)
            llama_ms.append(counted_ms)
    import llama_cpp

    ctx = raw_context(llm)
    return Throughput(test, n_tokens, depth, llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx),
                      wall_ms, llama_ms, warmup)


def bench_pp(llm, n_prompt: int = 512, repetitions: int = 5, warmup: int = 1, depth: int = 0,
             seed: int = 0) -> Throughput:
    """llama-bench ``pp<n_prompt>``: one eval of ``n_prompt`` fixed tokens per repetition."""
    return bench_test(llm, "pp", n_prompt, repetitions, warmup, depth, seed)


def bench_tg(llm, n_gen: int = 128, repetitions: int = 5, warmup: int = 1, depth: int = 0,
             seed: int = 0) -> Throughput:
    """llama-bench ``tg<n_gen>``: ``n_gen`` single-token evals per repetition, no sampling."""
    return bench_test(llm, "tg", n_gen, repetitions, warmup, depth, seed)


@dataclass
class BindingCheck:
    """Our wall clock through the Python binding vs llama.cpp's own time, same decode calls."""

    test: str
    n: int
    binding_tokens_per_s: float  # all timed tokens / all wall time
    llama_tokens_per_s: float  # all timed tokens / all of llama.cpp's time
    ratio: float  # binding / llama.cpp: below 1 when the binding adds time
    per_repetition: list[float]
    tolerance: float

    @property
    def within_tolerance(self) -> bool:
        return abs(self.ratio - 1.0) <= self.tolerance


def compare_with_llama_cpp(result: Throughput, tolerance: float = BINDING_TOLERANCE) -> BindingCheck:
    """How far the binding's wall-clock tokens/s is from llama.cpp's internal tokens/s for ``result``'s runs."""
    total_tokens = result.n_tokens * result.n
    binding = total_tokens / (sum(result.wall_ms) / 1000)
    llama = total_tokens / (sum(result.llama_ms) / 1000)
    per_repetition = [llama_ms / wall_ms for wall_ms, llama_ms in zip(result.wall_ms, result.llama_ms)]
    return BindingCheck(result.name, result.n, binding, llama, binding / llama, per_repetition, tolerance)


def throughput_row(result: Throughput) -> dict:
    """Mean ± std of per-repetition tokens/s (llama-bench's figure) and the pooled rates the ratio uses.

    The two differ when repetitions vary a lot: the mean of rates favours fast
    repetitions, the pooled rate (all tokens / all time) weights by time.
    """
    check = compare_with_llama_cpp(result)
    return {"test": result.name, "kind": result.test, "n_tokens": result.n_tokens, "depth": result.depth,
            "n": result.n, "tokens_per_s_mean": result.mean_tokens_per_s,
            "tokens_per_s_std": result.std_tokens_per_s, "wall_ms_mean": float(np.mean(result.wall_ms)),
            "tokens_per_s_pooled": check.binding_tokens_per_s,
            "llama_tokens_per_s_pooled": check.llama_tokens_per_s, "binding_ratio": check.ratio,
            "samples_ms": result.wall_ms}
