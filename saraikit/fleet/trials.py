"""Timing trials on a target's worker, stored by the head.

A trial sent to the cluster runs on a worker of its target, in that machine's
benchmark slot (nothing else runs there meanwhile), in a fresh process of the
worker (:func:`saraikit.experiments.bench.bench_onnx`, one process) and
stores nothing there: the worker returns the outcome and the head writes the
trial (:func:`saraikit.experiments.bench.outcome_trial`) with the worker's
address in its method. The model is found in the worker's own ``models/``
by name; its sha256 was checked by :mod:`saraikit.fleet.models_sync`.

With ``warm=True`` the worker runs the trial in its warm process instead
(:class:`saraikit.core.warm.WarmProcess`, recycled when the round changes,
as :func:`saraikit.experiments.adaptive.warm_measure` does locally); a
configuration with process-wide settings still gets a fresh process.

A worker killed mid-trial: the scheduler retries the job once (the nanny
restarts the worker on the same device, so the same target); a second death
is a failed trial with the reason. Rows stored before stay as they are: the
head commits each trial in its own transaction as it arrives.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from saraikit.core.hardware import Fingerprint
from saraikit.core.store import ResultsStore
from saraikit.core.warm import WarmProcess
from saraikit.engines.ort import OrtConfig
from saraikit.experiments.bench import BenchOutcome, bench_onnx, outcome_trial, single_outcome
from saraikit.experiments.grid import MeasureFn, MeasurementFailed
from saraikit.experiments.scenario import OnnxBench, run_onnx_bench
from saraikit.fleet import cluster
from saraikit.models import catalog


_warm: dict = {"process": None, "round": None}  # on a worker: its warm trial process and the round it serves


def bench_on_worker(model: str, spec: OnnxBench, round_index: int, timeout_s: float,
                    warm: bool = False) -> BenchOutcome:
    """Runs on a worker: one process (fresh, or the worker's warm one) of ``spec`` on its copy of ``model``."""
    local = replace(spec, model_path=str(catalog.model_path(model)))
    if warm and not OrtConfig.from_dict(spec.ort).uses_env_arena:
        process = _warm["process"] = _warm["process"] or WarmProcess()
        if _warm["round"] != round_index:
            process.restart()
            _warm["round"] = round_index
        result = process.run(run_onnx_bench, local, timeout_s=timeout_s)
        outcome = single_outcome(local, result.value if result.ok else None,
                                 None if result.ok else f"{result.status}: {result.reason()}", round_index)
    else:
        outcome = bench_onnx(local, store=None, model_name=model, processes=1, round_index=round_index,
                             timeout_s=timeout_s)
    outcome.raw = outcome.raw and {**outcome.raw, "worker_pid": os.getpid(), "warm": bool(warm)}
    return outcome


def submit_bench(client, target: str, model: str, spec: OnnxBench, round_index: int = 1, timeout_s: float = 600.0,
                 warm: bool = False):
    return cluster.submit(client, bench_on_worker, model, spec, round_index, timeout_s, warm, target=target)


def finish_bench(future, spec: OnnxBench, round_index: int, store: ResultsStore | None, run_id: str | None,
                 experiment: str, model: str, model_sha256: str | None, target: str,
                 wait_s: float | None = None) -> BenchOutcome:
    """Wait for a submitted trial and store it on the head (ok, or failed with the reason)."""
    done = cluster.outcome(future, wait_s)
    outcome = done.value if done.ok else single_outcome(spec, None, f"cluster: {done.reason}", round_index)
    if store is not None:
        trial = outcome_trial(spec, outcome, experiment, model, model_sha256, True, round_index)
        warm = bool(outcome.raw and outcome.raw.get("warm"))
        trial.method.update({"cluster": True, "target": target,
                             "process": "warm (on the worker, one per round)" if warm else "fresh (on the worker)"})
        outcome.trial_id = store.record(run_id, trial)
    return outcome


def run_bench(client, target: str, model: str, spec: OnnxBench, store: ResultsStore | None = None,
              run_id: str | None = None, experiment: str = "onnx_benchmark", model_sha256: str | None = None,
              round_index: int = 1, timeout_s: float = 600.0) -> BenchOutcome:
    """One trial of ``spec`` on a worker of ``target``, stored by the head."""
    future = submit_bench(client, target, model, spec, round_index, timeout_s)
    return finish_bench(future, spec, round_index, store, run_id, experiment, model, model_sha256, target)


def cluster_measure(client, target: str, model: str, model_sha256: str | None, store: ResultsStore | None,
                    run_id: str | None, experiment: str = "grid_search", dims: dict | None = None,
                    values: dict | None = None, feeds: dict | None = None, timeout_s: float = 600.0,
                    warm: bool = False) -> MeasureFn:
    """A grid measure function whose trials run on the workers of ``target``; a whole round is sent at once
    (``measure.many``), so a pool of identical workers of one target measures a round in parallel."""

    def spec_for(config: dict, plan: dict) -> OnnxBench:
        return OnnxBench(model_path=model, ort=config, plan={k: v for k, v in plan.items() if k != "round"},
                         dims=dims or {}, values=values or {}, feeds=feeds)

    def many(configs: list[dict], plan: dict) -> list:
        round_index = plan.get("round", 1)
        specs = [spec_for(c, plan) for c in configs]
        futures = [submit_bench(client, target, model, s, round_index, timeout_s, warm) for s in specs]
        results = []
        for spec, future in zip(specs, futures):
            outcome = finish_bench(future, spec, round_index, store, run_id, experiment, model, model_sha256, target)
            results.append((outcome.raw["samples_ms"], False) if outcome.ok else MeasurementFailed(outcome.error))
        return results

    def measure(config: dict, plan: dict):
        result = many([config], plan)[0]
        if isinstance(result, MeasurementFailed):
            raise result
        return result

    measure.many = many
    return measure


def run_for_target(store: ResultsStore, client, target: str, mode: str, notes: str = "",
                   run_id: str | None = None) -> str:
    """A run of ``store`` whose fingerprint is that of ``target``'s worker: ``run_id`` when it already is, else a new one.

    Trial identities hash the run's hardware; a trial measured on another
    machine must not be stored under the head's fingerprint.
    """
    workers = cluster.pick_targets(client, [target])[target]
    fp = Fingerprint(**workers[0].described["fingerprint"])
    if run_id is not None:
        runs = store.runs().set_index("run_id")
        if run_id in runs.index and runs.loc[run_id, "hardware_hash"] == fp.digest() \
                and runs.loc[run_id, "target"] == target:
            return run_id
    return store.start_run(target=target, notes=notes or json.dumps({"cluster": client.scheduler.address}),
                           fp=fp, mode=mode)
