"""Thread-count and context-size sweeps, each configuration in a fresh process.

Decision: thread counts and context sizes are process-wide in llama.cpp
(thread pools, allocations), so every configuration runs in its own process
through ``saraikit.core.trials.run_isolated`` with the module-level worker
:func:`bench_worker`. A failed or crashed configuration gives rows with its
status, never a crash of the sweep. llama.cpp's threads meet at a barrier
after every operation, so a run that uses every core is only meaningful when
nothing else is running (see ``saraikit.core.contention``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import pandas as pd
import psutil

from saraikit.core.config import check_count
from saraikit.core.errors import ConfigError
from saraikit.core.memory import memory_snapshot
from saraikit.core.trials import run_isolated
from saraikit.engines.llama import LlamaConfig
from saraikit.experiments.llm.load import DEFAULT_CONFIG, check_gguf, load
from saraikit.experiments.llm.throughput import bench_test, throughput_row


def bench_worker(model_path: str, config: dict, tests: list[tuple[str, int, int]], repetitions: int,
                 warmup: int) -> dict:
    """Trial worker: load once, run each ``(test, n_tokens, depth)``; return memory and Throughputs."""
    loaded = load(model_path, LlamaConfig.from_dict(config))
    results = []
    for test, n_tokens, depth in tests:
        results.append(bench_test(loaded.llm, test, n_tokens, repetitions, warmup, depth, seed=0))
    after = memory_snapshot()
    return {"load_s": loaded.load_s, "rss_after_load": loaded.memory_after.rss_bytes,
            "uss_after_load": loaded.memory_after.uss_bytes, "uss_after_bench": after.uss_bytes,
            "results": results}


def _isolated_rows(model_path, config: LlamaConfig, tests, repetitions, warmup, timeout_s, labels: dict) -> list:
    outcome = run_isolated(bench_worker, str(model_path), config.to_dict(), tests, repetitions, warmup,
                           timeout_s=timeout_s)
    if not outcome.ok:
        return [{**labels, "status": outcome.status, "test": f"{test}{n}" + (f" @ d{d}" if d else ""),
                 "error": outcome.reason(), "config": config.to_dict()} for test, n, d in tests]
    value = outcome.value
    memory = {"rss_after_load": value["rss_after_load"], "uss_after_load": value["uss_after_load"],
              "uss_after_bench": value["uss_after_bench"]}
    return [{**labels, "status": "ok", **throughput_row(result), **memory, "error": "",
             "config": config.to_dict()} for result in value["results"]]


def thread_sweep(model_path: str | Path, threads: Sequence[int] = (1, 2), n_prompt: int = 512, n_gen: int = 128,
                 repetitions: int = 5, warmup: int = 1, config: LlamaConfig | None = None,
                 timeout_s: float = 900.0) -> pd.DataFrame:
    """pp and tg tokens/s per thread count (``n_threads`` = ``n_threads_batch``, like llama-bench ``-t``)."""
    base = config or DEFAULT_CONFIG
    check_gguf(model_path)
    if not threads:
        raise ConfigError("thread_sweep: threads is empty")
    rows = []
    for count in threads:
        check_count(count, "a thread count", "thread_sweep")
        variant = dataclasses.replace(base, n_threads=count, n_threads_batch=count)
        tests = [("pp", n_prompt, 0), ("tg", n_gen, 0)]
        rows += _isolated_rows(model_path, variant, tests, repetitions, warmup, timeout_s, {"n_threads": count})
    return pd.DataFrame(rows)


def context_scaling(model_path: str | Path, n_ctx: Sequence[int] = (512, 1024, 2048),
                    prompt_lengths: Sequence[int] = (128, 448, 960, 1984), n_gen: int = 64,
                    repetitions: int = 3, warmup: int = 1, config: LlamaConfig | None = None,
                    timeout_s: float = 900.0) -> pd.DataFrame:
    """Prompt processing of each prompt length, and tg ``n_gen`` after it, per context size.

    Lengths that do not fit (``length + n_gen > n_ctx``) get a "skipped" row.
    """
    base = config or DEFAULT_CONFIG
    check_gguf(model_path)
    if not n_ctx or not prompt_lengths:
        raise ConfigError("context_scaling: n_ctx and prompt_lengths must not be empty")
    rows = []
    for size in n_ctx:
        check_count(size, "an n_ctx", "context_scaling")
        variant = dataclasses.replace(base, n_ctx=size, n_batch=None, n_ubatch=None)
        fitting = [length for length in prompt_lengths if length + n_gen <= size]
        rows += [{"n_ctx": size, "prompt_length": length, "status": "skipped",
                  "error": f"prompt_length + n_gen = {length + n_gen} > n_ctx"}
                 for length in prompt_lengths if length not in fitting]
        tests = [test for length in fitting for test in (("pp", length, 0), ("tg", n_gen, length))]
        if tests:
            measured = _isolated_rows(model_path, variant, tests, repetitions, warmup, timeout_s, {"n_ctx": size})
            for row, (test, n_tokens, depth) in zip(measured, tests):  # rows come back in test order
                rows.append({**row, "prompt_length": n_tokens if test == "pp" else depth})
    return pd.DataFrame(rows)


def thread_counts(threads: Sequence[int] | None = None) -> list[int]:
    """``threads`` checked and sorted, or 1..logical cores when None."""
    if threads is None:
        return list(range(1, (psutil.cpu_count() or 1) + 1))
    if isinstance(threads, (str, int)) or not threads:
        raise ConfigError(f"thread counts must be a non-empty list of ints, got {threads!r}")
    return sorted({check_count(count, "a thread count", "thread_counts") for count in threads})
