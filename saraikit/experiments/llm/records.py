"""Results-store trials for the LLM protocol: load, prompts, pp/tg, and the sweeps' rows.

Decisions: tokens/s figures are *derived* (a count over a measured time),
wall times and memory are *measured*; failed sweep rows become failed trials
with their error, skipped rows (a prompt that does not fit the context) none.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from saraikit.core import stats
from saraikit.core.errors import MeasurementError
from saraikit.core.store import Figure, Trial
from saraikit.engines.llama import LlamaConfig
from saraikit.experiments.llm.load import LoadedLlama
from saraikit.experiments.llm.throughput import BINDING_TOLERANCE, Throughput, throughput_row


def load_trial(loaded: LoadedLlama, model_name: str | None = None, model_sha256: str | None = None) -> Trial:
    """Experiment ``llm_load``: load time, memory before/after, the GGUF's size and resident mapping."""
    figures = [Figure("load_time", loaded.load_s, "s", n=1),
               Figure("llama_cpp_load_time", loaded.llama_load_ms, "ms", n=1,
                      extra={"source": "llama.cpp llama_perf_context.t_load_ms"}),
               Figure("gguf_file_size", loaded.file_bytes, "bytes", n=1)]
    for stage, snapshot in (("before", loaded.memory_before), ("after", loaded.memory_after)):
        for key in ("rss_bytes", "pss_bytes", "uss_bytes"):
            value = getattr(snapshot, key)
            if value is not None:
                figures.append(Figure(f"{key.replace('_bytes', '')}_{stage}_load", value, "bytes", n=1))
    for stage, split in (("before", loaded.split_before), ("after", loaded.split_after)):
        if split is not None:
            figures += [Figure(f"rss_anon_{stage}_load", split.anon_bytes, "bytes", n=1),
                        Figure(f"rss_file_{stage}_load", split.file_bytes, "bytes", n=1)]
    if loaded.mapped is not None:
        figures += [Figure("gguf_mapped_rss", loaded.mapped.rss_bytes, "bytes", n=1,
                           extra={"note": "file-backed pages of the mmapped GGUF, counted in RSS"}),
                    Figure("gguf_mapped_pss", loaded.mapped.pss_bytes, "bytes", n=1)]
    return Trial("llm_load", config=loaded.config.to_dict(), config_key=loaded.config.key(), figures=figures,
                 model_name=model_name or Path(loaded.model_path).stem, model_sha256=model_sha256,
                 method={"timer": "time.perf_counter around Llama(...)", "memory": "psutil memory_full_info",
                         "use_mmap": loaded.config.use_mmap})


def prompts_trial(frame: pd.DataFrame, config: LlamaConfig, max_tokens: int, model_name: str | None = None,
                  model_sha256: str | None = None) -> Trial:
    """Experiment ``llm_prompts``: TTFT, total latency and decode speed.

    ``frame`` holds the rows of :func:`~saraikit.experiments.llm.generation.run_prompts`.
    """
    if frame.empty:
        raise MeasurementError("prompts_trial: no rows to store")
    n = len(frame)
    figures = []
    for column, metric in (("ttft_ms", "ttft"), ("total_ms", "total_latency")):
        summary = stats.summarize(frame[column].to_numpy())
        figures += [Figure(f"{metric}_p50", summary.p50, "ms", n=n),
                    Figure(f"{metric}_mean", summary.mean, "ms", n=n),
                    Figure(f"{metric}_p50_ci_low", summary.p50_ci_low, "ms", n=n, provenance="derived"),
                    Figure(f"{metric}_p50_ci_high", summary.p50_ci_high, "ms", n=n, provenance="derived")]
    decode = frame["decode_tokens_per_s"].dropna()
    figures += [Figure("decode_tokens_per_s_mean", float(decode.mean()), "tokens/s", n=len(decode),
                       provenance="derived"),
                Figure("prompt_tokens_mean", float(frame["n_prompt_tokens"].mean()), "tokens", n=n),
                Figure("generated_tokens_mean", float(frame["n_generated"].mean()), "tokens", n=n)]
    distinct = {column: sorted(map(str, frame[column].unique())) for column in ("language", "prompt_kind")}
    trial_config = {"llama": config.to_dict(), "max_tokens": max_tokens,
                    "temperature": sorted(map(float, frame["temperature"].unique())),
                    "languages": distinct["language"], "prompt_kind": distinct["prompt_kind"],
                    "n_prompts": int(frame["prompt_index"].nunique())}
    return Trial("llm_prompts", config=trial_config, figures=figures, samples=frame["total_ms"].tolist(),
                 model_name=model_name, model_sha256=model_sha256,
                 method={"generation": "streamed llm.generate from a fresh context", "ttft": "prompt string "
                         "to first sampled token", "prefix_reuse": "defeated (reset + kv_cache_clear)"})


def _throughput_figures(row: dict) -> list[Figure]:
    n = row["n"]
    return [Figure("tokens_per_s_mean", row["tokens_per_s_mean"], "tokens/s", n=n, provenance="derived"),
            Figure("tokens_per_s_std", row["tokens_per_s_std"], "tokens/s", n=n, provenance="derived"),
            Figure("wall_time_mean", row["wall_ms_mean"], "ms", n=n),
            Figure("tokens_per_s_pooled", row["tokens_per_s_pooled"], "tokens/s", n=n, provenance="derived",
                   extra={"definition": "all timed tokens / all wall time"}),
            Figure("llama_cpp_tokens_per_s_pooled", row["llama_tokens_per_s_pooled"], "tokens/s", n=n,
                   provenance="derived", extra={"source": "llama.cpp perf counters for the same decode calls"}),
            Figure("binding_vs_llama_cpp_ratio", row["binding_ratio"], "x", n=n, provenance="derived",
                   extra={"within_tolerance": abs(row["binding_ratio"] - 1) <= BINDING_TOLERANCE,
                          "tolerance": BINDING_TOLERANCE})]


def throughput_trial(result: Throughput, config: LlamaConfig, model_name: str | None = None,
                     model_sha256: str | None = None) -> Trial:
    """Experiment ``llm_pp`` or ``llm_tg`` for one :class:`~saraikit.experiments.llm.throughput.Throughput`."""
    row = throughput_row(result)
    return Trial(f"llm_{result.test}", figures=_throughput_figures(row), samples=result.wall_ms,
                 config={"llama": config.to_dict(), "test": result.name, "n_tokens": result.n_tokens,
                         "depth": result.depth, "n_threads": result.n_threads,
                         "n_threads_batch": result.n_threads_batch},
                 model_name=model_name, model_sha256=model_sha256,
                 method={"protocol": "llama-bench style, llm.eval + llama_synchronize, no sampling",
                         "warmup": result.warmup, "repetitions": result.n})


def _sweep_trials(frame: pd.DataFrame, experiment: str, labels: tuple[str, ...], model_name, model_sha256):
    trials = []
    for row in frame.to_dict("records"):
        if row["status"] == "skipped":
            continue
        ok = row["status"] == "ok"
        config = {"llama": row.get("config"), "test": row.get("test"),
                  **{label: row.get(label) for label in labels}}
        trials.append(Trial(experiment, config=config, status="ok" if ok else "failed",
                            error=None if ok else f"{row['status']}: {row['error']}",
                            figures=_throughput_figures(row) if ok else [],
                            samples=row["samples_ms"] if ok else None,
                            model_name=model_name, model_sha256=model_sha256,
                            method={"isolated": True, "protocol": "llama-bench style"}))
    return trials


def thread_trials(frame: pd.DataFrame, model_name: str | None = None, model_sha256: str | None = None) -> list[Trial]:
    """Experiment ``llm_threads``: one trial per (thread count, test) row of :func:`~.sweeps.thread_sweep`."""
    return _sweep_trials(frame, "llm_threads", ("n_threads",), model_name, model_sha256)


def context_trials(frame: pd.DataFrame, model_name: str | None = None, model_sha256: str | None = None) -> list[Trial]:
    """Experiment ``llm_context``: one trial per (n_ctx, test) row of :func:`~.sweeps.context_scaling`."""
    return _sweep_trials(frame, "llm_context", ("n_ctx", "prompt_length"), model_name, model_sha256)
