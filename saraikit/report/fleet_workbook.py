"""The workbook on a fleet: every notebook on each target's worker, results back to the head.

``saraikit workbook --cluster ADDRESS --targets all|a,b`` (``./run.sh workbook``
passes the flags through) does, per target, what :func:`saraikit.report.workbook.run_workbook`
does on one machine, with the notebooks executed on that target's worker:

1. the head connects (a clear error within seconds when the scheduler cannot
   be reached), picks the targets, and checks every worker's models against
   its own by sha256 (refused when they differ, shipped when missing);
2. the head starts one run per target with the *worker's* fingerprint;
3. per target, notebooks run one after the other in the worker's benchmark
   slot (:func:`run_notebook_job`): the head's notebook file and the same
   parameters as a local run (quick sizes, ``params/<target>.yaml``); the
   worker executes it with papermill into a scratch folder with a scratch
   results database, exports the HTML, and returns the files and the trials
   the notebook stored; targets run in parallel;
4. as each notebook comes back the head writes its files under
   ``outputs/<target>/runs/<run id>/``, publishes the latest copies, and
   imports its trials into ``outputs/results.sqlite`` in one transaction (the
   head is the database's only writer; a head killed mid-run keeps every
   notebook imported so far);
5. at the end: ``summary.json`` per target, one ``outputs/index.html`` across
   targets, and the browser check of every report, on the head.

The worker's scratch folder (``<tmp>/saraikit-fleet/<run id>/``) persists for
the run, so a later notebook finds what an earlier one wrote (e.g. 01's INT8
encoders for 06); it is the worker's, and nothing in it is read by the head
except what a job returns.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distributed import as_completed

from saraikit.core import paths
from saraikit.core.hardware import Fingerprint, fingerprint
from saraikit.core.io import atomic_write_bytes, atomic_write_json
from saraikit.core.store import ResultsStore
from saraikit.fleet import cluster, models_sync, rows
from saraikit.report.index_page import build_index
from saraikit.report.workbook import (NotebookRun, WorkbookRun, check_in_browser, execute, load_params,
                                      publish_latest, quick_values, select)

MAX_FILE_BYTES = 64 * 2**20  # files a job sends back (reports, figures, YAML); bigger ones stay on the worker
_KERNEL_ENV = {"SARAIKIT_BATCH": "1", "TQDM_DISABLE": "1"}


def run_notebook_job(name: str, source: bytes, parameters: dict, run_id: str, target: str, mode: str) -> dict:
    """Runs on a worker: execute one notebook into the run's scratch folder; return its files and trials."""
    scratch = Path(tempfile.gettempdir()) / "saraikit-fleet" / run_id
    outputs, notebooks = scratch / "outputs", scratch / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in (*_KERNEL_ENV, "SARAIKIT_OUTPUTS")}
    os.environ.update({**_KERNEL_ENV, "SARAIKIT_OUTPUTS": str(outputs)})  # the kernel inherits them
    try:
        store = ResultsStore(outputs / "results.sqlite")
        store.start_run(target=target, run_id=run_id, fp=fingerprint(), mode=mode, notes="fleet scratch")
        before = rows.last_trial_id(store)
        notebook = notebooks / f"{name}.ipynb"
        notebook.write_bytes(source)
        run_dir = outputs / target / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        nb_run = execute(notebook, run_dir / notebook.name, parameters)
        files = {str(p.relative_to(outputs)): p.read_bytes() for p in _returned_files(outputs, target, run_id)}
        return {"run": asdict(nb_run), "files": files, "trials": rows.export_trials(store, run_id, before),
                "worker_pid": os.getpid()}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _returned_files(outputs: Path, target: str, run_id: str) -> list[Path]:
    run_dir = outputs / target / "runs" / run_id
    found = [p for p in run_dir.rglob("*") if p.is_file()] + list((outputs / target).glob("*.yaml"))
    return [p for p in found if p.stat().st_size <= MAX_FILE_BYTES and not p.name.startswith(".")]


@dataclass
class FleetRun:
    """One workbook run per target, and the whole run's wall time."""

    address: str
    runs: dict[str, WorkbookRun] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(run.ok for run in self.runs.values())

    def table(self) -> str:
        parts = [f"== {target} (run {run.run_id})\n{run.table()}" for target, run in self.runs.items()]
        return "\n".join(parts + [f"fleet {self.address}: {len(self.runs)} target(s) in {self.seconds:.1f} s"])


def _parameters(notebook: str, target: str, run_id: str, quick: bool, params: dict) -> dict:
    quick_sizes = quick_values(notebook) if quick else {}
    return {**quick_sizes, **params.get("all", {}), **params.get(notebook, {}),
            "target": target, "run_id": run_id, "quick": quick}


def _take_back(store: ResultsStore, result: WorkbookRun, value: dict) -> NotebookRun:
    """Write a job's files under the head's outputs and import its trials; the NotebookRun with head paths."""
    outputs = paths.outputs_dir()
    for relpath, data in value["files"].items():
        atomic_write_bytes(outputs / relpath, data)
    store.import_trials(result.run_id, rows.to_import(value["trials"]))
    nb = NotebookRun(**value["run"])
    out_dir = Path(result.out_dir)
    for attr in ("executed", "html", "report_html"):
        if getattr(nb, attr):
            setattr(nb, attr, str(out_dir / Path(getattr(nb, attr)).name))
    return nb


def run_fleet_workbook(address: str, targets: str | list[str] | None = "all", quick: bool = False,
                       only: list[str] | None = None, params_file: str | Path | None = None,
                       models: list[str] | None = None, timeout_s: float = cluster.DEFAULT_CONNECT_TIMEOUT_S,
                       notebook_timeout_s: float | None = None) -> FleetRun:
    """Run the notebooks on every chosen target's worker; see the module docstring. ``models``: the
    models to check and ship (None: every model of the head's manifest)."""
    start = time.perf_counter()
    client = cluster.connect(address, timeout_s)
    fleet = FleetRun(address)
    try:
        chosen = cluster.pick_targets(client, targets)
        models_sync.ensure_models(client, [w.address for ws in chosen.values() for w in ws], models)
        notebooks = select(only)
        store = ResultsStore()
        mode = "quick" if quick else "full"
        queues, params = {}, {}
        for target, workers in chosen.items():
            fp = Fingerprint(**workers[0].described["fingerprint"])
            run_id = store.start_run(target=target, fp=fp, mode=mode,
                                     notes=f"fleet workbook quick={quick} cluster={address}")
            out_dir = paths.outputs_dir() / target / "runs" / run_id
            out_dir.mkdir(parents=True, exist_ok=True)
            fleet.runs[target] = WorkbookRun(target, run_id, str(out_dir), quick)
            queues[target], params[target] = list(notebooks), load_params(target, params_file)
        _drive(client, store, fleet, queues, params, quick, mode, notebook_timeout_s)
    finally:
        client.close()
        fleet.seconds = time.perf_counter() - start
    _finish(store, fleet)
    return fleet


def _submit_next(client, fleet: FleetRun, target: str, queue: list, params: dict, quick: bool, mode: str,
                 jobs: dict):
    notebook = queue.pop(0)
    run = fleet.runs[target]
    future = cluster.submit(client, run_notebook_job, notebook.stem, notebook.read_bytes(),
                            _parameters(notebook.stem, target, run.run_id, quick, params), run.run_id, target, mode,
                            target=target)
    jobs[future.key] = (target, notebook.stem, time.perf_counter())
    return future


def _drive(client, store, fleet: FleetRun, queues: dict, params: dict, quick: bool, mode: str,
           notebook_timeout_s: float | None) -> None:
    """Per target, one notebook at a time; targets in parallel; each result taken back as it arrives."""
    jobs: dict = {}
    pending = as_completed([_submit_next(client, fleet, t, q, params[t], quick, mode, jobs)
                            for t, q in queues.items() if q], loop=client.loop)
    for future in pending:
        target, name, started = jobs.pop(future.key)
        done = cluster.outcome(future, notebook_timeout_s)
        run = fleet.runs[target]
        if done.ok:
            nb = _take_back(store, run, done.value)
        else:
            nb = NotebookRun(name, "failed", time.perf_counter() - started, error=f"on the cluster: {done.reason}")
        run.notebooks.append(nb)
        publish_latest(Path(run.out_dir), paths.outputs_dir() / target, name)
        if queues[target]:
            pending.add(_submit_next(client, fleet, target, queues[target], params[target], quick, mode, jobs))


def _finish(store: ResultsStore, fleet: FleetRun) -> None:
    for run in fleet.runs.values():
        run.seconds = sum(nb.seconds for nb in run.notebooks)
        atomic_write_json(Path(run.out_dir) / "summary.json", asdict(run))
    build_index(store)
    for run in fleet.runs.values():
        run.browser_problems = check_in_browser(run, Path(run.out_dir))
        atomic_write_json(Path(run.out_dir) / "summary.json", asdict(run))
