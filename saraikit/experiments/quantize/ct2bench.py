"""CTranslate2's own INT8 Whisper encoder, timed like an ONNX variant: the reference the variants must beat.

Decisions
---------
- The encoder runs on the same ``mel`` feed as the ONNX encoders, in a fresh
  process (``saraikit.core.trials.run_isolated``), and is stored like
  ``saraikit.experiments.bench.bench_onnx`` so the rows compare directly.
- ``cpu_threads`` defaults to one thread per physical core, what ONNX
  Runtime uses by default: CTranslate2's own default (4 threads)
  oversubscribes a 2-core CPU and measurably slows the encoder.
- The worker (:func:`ct2_encoder_bench`) is imported afresh by the spawned
  process, so this module imports only what the worker needs; the runner's
  other imports are local.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from saraikit.core.memory import memory_snapshot
from saraikit.core.timing import TimingPlan, measure, timed
from saraikit.engines.ct2 import Ct2WhisperConfig, build_ct2_whisper


def ct2_encoder_bench(ct2_dir: str | Path, feeds: Mapping[str, np.ndarray], compute_type: str = "int8",
                      plan: Mapping | None = None, cpu_threads: int = 0) -> dict:
    """CTranslate2's Whisper encoder on the same ``mel`` feed; the dict ``experiments.bench.run_onnx_bench`` returns.

    Module level so :func:`saraikit.core.trials.run_isolated` can run it in a fresh process."""
    import ctranslate2

    timing_plan = TimingPlan.from_dict(dict(plan or {}))
    before = memory_snapshot()
    config = Ct2WhisperConfig(compute_type=compute_type, cpu_threads=cpu_threads)
    whisper, load_s = timed(lambda: build_ct2_whisper(ct2_dir, config))
    loaded = memory_snapshot()
    mel = ctranslate2.StorageView.from_array(np.ascontiguousarray(feeds["mel"], dtype=np.float32))

    def run():
        return whisper.encode(mel, to_cpu=True)

    _, first_s = timed(run)
    timing = measure(run, timing_plan)
    return {
        "load_s": load_s, "first_inference_ms": first_s * 1000, "samples_ms": timing.samples_ms,
        "warmup_ms": timing.warmup_ms, "method": {**timing.method(), "engine": "ctranslate2",
                                                   "compute_type": compute_type},
        "memory": {"before": before.to_dict(), "loaded": loaded.to_dict(), "after": memory_snapshot().to_dict()},
        "input_shapes": {"mel": list(np.shape(feeds["mel"]))},
    }


def bench_ct2_encoder(ct2_dir: str | Path, feeds: Mapping[str, np.ndarray], compute_type: str, plan: Mapping,
                      store=None, run_id: str | None = None, experiment: str = "quantization",
                      model_name: str | None = None, cpu_threads: int | None = None, timeout_s: float = 600.0):
    """:func:`ct2_encoder_bench` in a fresh process, stored like ``experiments.bench.bench_onnx``; a BenchOutcome.

    ``cpu_threads`` None means one thread per physical core (see the module docstring)."""
    import psutil

    from saraikit.core import stats  # lazy: the spawned worker imports this module
    from saraikit.core.store import Trial  # lazy: the spawned worker imports this module
    from saraikit.core.trials import run_isolated  # lazy: the spawned worker imports this module
    from saraikit.experiments import bench  # lazy: the spawned worker imports this module
    from saraikit.models.catalog import sha256_file  # lazy: the spawned worker imports this module

    if cpu_threads is None:
        cpu_threads = psutil.cpu_count(logical=False) or 0
    result = run_isolated(ct2_encoder_bench, str(ct2_dir), dict(feeds), compute_type, dict(plan), cpu_threads,
                          timeout_s=timeout_s)
    raw, error = (result.value, None) if result.ok else (None, f"{result.status}: {result.reason()}")
    summary = stats.summarize(raw["samples_ms"]) if raw else None
    trial_id = None
    if store is not None:
        trial = Trial(
            experiment=experiment, model_name=model_name or f"{Path(ct2_dir).name}:ct2-{compute_type}",
            model_sha256=sha256_file(Path(ct2_dir) / "model.bin"),
            config={"engine": "ctranslate2", "compute_type": compute_type, "cpu_threads": cpu_threads,
                    "plan": dict(plan), "inputs": "real"},
            status="ok" if raw else "failed", error=error,
            method={**(raw["method"] if raw else {}), "isolated": True, "inputs": "real"},
            samples=raw["samples_ms"] if raw else None, figures=bench.bench_figures(raw, summary) if raw else [],
        )
        trial_id = store.record(run_id, trial)
    return bench.BenchOutcome(raw is not None, summary, raw, error, trial_id)
