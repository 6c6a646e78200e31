"""The benchmark scenario a trial process runs: what to run and running it.

:class:`OnnxBench` says what to benchmark (model, session options, inputs,
timing plan); :func:`run_onnx_bench` loads the session, runs the first
inference and the timed loop in *this* process and returns plain data.

Why a module of its own: a spawned trial process imports the module of the
function it runs and of its argument. This module needs numpy, pandas (for
synthetic inputs) and ONNX Runtime; :mod:`saraikit.experiments.bench` also
pulls in the statistics (scipy) and the results store, which takes about
three times as long to import (measured 0.4-1.2 s against 2.3-3.9 s on the
2-core test machine). With several fresh processes per configuration the
difference is paid many times. ``bench`` re-exports both names, so
``bench.OnnxBench`` keeps working.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from saraikit.core.memory import memory_snapshot
from saraikit.core.timing import TimingPlan, measure, timed
from saraikit.engines.ort import OrtConfig, build_ort_session, make_runner
from saraikit.experiments.synthetic import synthetic_inputs


@dataclass
class OnnxBench:
    """What to benchmark: a model, session options, inputs and a timing plan."""

    model_path: str
    ort: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)  # values for dynamic dimensions (synthetic inputs)
    values: dict = field(default_factory=dict)  # fixed values for some inputs (synthetic inputs)
    feeds: dict | None = None  # real inputs; when given, no synthetic input is generated
    seed: int = 0

    @property
    def inputs_kind(self) -> str:
        return "real" if self.feeds is not None else "synthetic"

    def config(self) -> dict:
        """What identifies this benchmark's configuration in the database."""
        return {"ort": OrtConfig.from_dict(self.ort).to_dict(), "plan": TimingPlan.from_dict(self.plan).to_dict(),
                "dims": self.dims, "inputs": self.inputs_kind,
                "values": {k: np.asarray(v).tolist() for k, v in self.values.items()}}

    def config_key(self) -> str:
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def run_onnx_bench(spec: OnnxBench) -> dict:
    """Run the scenario in *this* process and return plain data (picklable)."""
    config = OrtConfig.from_dict(spec.ort)
    plan = TimingPlan.from_dict(spec.plan)
    memory_before = memory_snapshot()
    session, load_s = timed(lambda: build_ort_session(spec.model_path, config))
    memory_loaded = memory_snapshot()
    feeds = spec.feeds if spec.feeds is not None else synthetic_inputs(
        session, dims=spec.dims, seed=spec.seed, values=spec.values)
    runner = make_runner(session, feeds, config.use_io_binding)
    _, first_s = timed(runner)
    timing = measure(runner, plan)
    memory_after = memory_snapshot()
    return {
        "load_s": load_s,
        "first_inference_ms": first_s * 1000,
        "samples_ms": timing.samples_ms,
        "warmup_ms": timing.warmup_ms,
        "method": timing.method(),
        "memory": {"before": memory_before.to_dict(), "loaded": memory_loaded.to_dict(),
                   "after": memory_after.to_dict()},
        "input_shapes": {k: list(np.shape(v)) for k, v in feeds.items()},
    }
