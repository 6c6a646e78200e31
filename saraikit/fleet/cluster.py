"""The Dask cluster: connecting to a scheduler, the workers' targets and slots, submitting jobs.

A saraikit worker is an ordinary ``dask worker`` started with two kinds of
resources (:func:`worker_resources`):

- ``benchmark=1``: the machine's one slot for timing work. Every saraikit job
  asks for it, so a timing trial never runs beside another job on its machine
  (start one worker per machine, one thread: :func:`worker_command`).
- ``target-<slug>=1``: the hardware target of the device (its fingerprint's
  slug, :func:`saraikit.core.hardware.target_slug`), so a job meant for one
  target runs only on a worker of that target.

Decisions:

- An unreachable scheduler is an error within ``timeout_s`` (5 s by default)
  that names the address, never a hang (:func:`connect`).
- A worker that dies mid-job (``kill -9``, out of memory) has its job retried
  once: the head sets the scheduler's ``allowed_failures`` to 1 on connect;
  the nanny restarts the worker process on the same device, so the retry runs
  on the same target. A second death ends the job as failed with the reason
  (:func:`outcome`), and the caller stores it as a failed trial.
- A worker computes like a local run on its device: Dask's nanny would pin
  BLAS/OpenMP threads to 1; ``saraikit worker`` sets them as a local run has
  them (:func:`worker_environment`).
- The head learns each worker's fingerprint by asking the worker
  (:func:`describe_worker` runs there), not from its name.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from saraikit.core import paths
from saraikit.core.errors import ClusterError
from saraikit.core.hardware import fingerprint, logical_cores, target_slug, usable_cpus

BENCHMARK = "benchmark"
TARGET_PREFIX = "target-"
DEFAULT_CONNECT_TIMEOUT_S = 5.0
ALLOWED_FAILURES = 1  # a job whose worker died is retried once, then failed
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def worker_environment() -> dict[str, str]:
    """What ``saraikit worker`` sets before starting ``dask worker`` (see the module docstring).

    - A nanny starts its worker as a daemon process, and a daemon may not
      start children; trials are children.
    - A nanny sets OMP/MKL/OpenBLAS threads to 1 in its worker (Dask's
      default ``pre-spawn-environ``) unless they are already set. A saraikit
      worker must compute like a local run on its device, so each one the
      user has not set is set to the CPUs the worker may use (what OpenBLAS
      and OpenMP take when unset). Measured: with one BLAS thread, whisper's
      features differed enough that 1 of 5 noisy clips decoded differently.
    """
    threads = str(usable_cpus() or logical_cores())
    return {"DASK_DISTRIBUTED__WORKER__DAEMON": "False",
            **{name: os.environ.get(name) or threads for name in THREAD_VARIABLES}}


def target_resource(target: str) -> str:
    return f"{TARGET_PREFIX}{target}"


def worker_resources(target: str | None = None) -> dict[str, int]:
    """The resources a saraikit worker advertises: the benchmark slot and its target."""
    return {BENCHMARK: 1, target_resource(target_slug(target)): 1}


def job_resources(target: str | None) -> dict[str, int]:
    """What a job asks for: the machine's benchmark slot, and the target's resource when pinned to one."""
    return {BENCHMARK: 1, **({target_resource(target): 1} if target else {})}


def worker_command(scheduler: str, target: str | None = None, name: str | None = None,
                   local_directory: str | None = None) -> list[str]:
    """The ``dask worker`` command line of a saraikit worker on this device.

    One worker process with one thread (one job at a time per machine), the
    resources of :func:`worker_resources`, no Dask memory limit (trials set
    their own, and a measuring process must not be paused or killed by a
    heuristic), a nanny that restarts the worker if it dies.
    """
    slug = target_slug(target)
    resources = " ".join(f"{k}={v}" for k, v in worker_resources(slug).items())
    command = [sys.executable, "-m", "dask", "worker", scheduler, "--nworkers", "1", "--nthreads", "1",
               "--resources", resources, "--memory-limit", "0",
               "--name", name or f"{slug}@{socket.gethostname()}-{os.getpid()}"]
    return command + (["--local-directory", local_directory] if local_directory else [])


def connect(address: str, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S):
    """A ``distributed.Client`` on ``address``, or :class:`ClusterError` naming it within ``timeout_s``."""
    from distributed import Client

    if not address or not isinstance(address, str):
        raise ClusterError(f"cluster address must be a scheduler address like tcp://HOST:8786, got {address!r}")
    try:
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout_s:g} s "
                           f"({type(exc).__name__}: {exc}); start it with `dask scheduler` "
                           "and check the address and port") from None
    try:
        client.run_on_scheduler(_set_allowed_failures, ALLOWED_FAILURES)
    except Exception:  # noqa: BLE001 - an old or locked-down scheduler keeps its own retry count
        pass
    return client


def _set_allowed_failures(count: int, dask_scheduler=None) -> int:
    dask_scheduler.allowed_failures = count
    return count


def describe_worker() -> dict:
    """Runs on a worker: its target, fingerprint, pid and models directory."""
    fp = fingerprint()
    return {"target": target_slug(None, fp), "fingerprint": fp.to_dict(), "hardware_hash": fp.digest(),
            "pid": os.getpid(), "models_dir": str(paths.models_dir())}


@dataclass
class WorkerInfo:
    """One worker as the head sees it."""

    address: str
    name: str
    target: str  # from its resources
    resources: dict = field(default_factory=dict)
    described: dict = field(default_factory=dict)  # describe_worker() on that worker


def workers(client) -> list[WorkerInfo]:
    """Every saraikit worker (one with a benchmark slot), with what it says about itself."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    found = []
    for address, worker in info.items():
        resources = dict(worker.get("resources") or {})
        targets = [k[len(TARGET_PREFIX):] for k in resources if k.startswith(TARGET_PREFIX)]
        if BENCHMARK in resources and len(targets) == 1:
            found.append(WorkerInfo(address, str(worker.get("name", address)), targets[0], resources))
    described = client.run(describe_worker, workers=[w.address for w in found], on_error="return") if found else {}
    for worker in found:
        value = described.get(worker.address)
        worker.described = value if isinstance(value, dict) else {"error": repr(value)}
        if worker.described.get("target") not in (None, worker.target):
            raise ClusterError(f"worker {worker.name} at {worker.address} advertises target {worker.target!r} "
                               f"but its fingerprint says {worker.described['target']!r}: restart it with "
                               "`saraikit worker` (or SARAIKIT_TARGET) so both agree")
    return found


def targets(client) -> dict[str, list[WorkerInfo]]:
    """Target slug -> its workers."""
    grouped: dict[str, list[WorkerInfo]] = {}
    for worker in workers(client):
        grouped.setdefault(worker.target, []).append(worker)
    return grouped


def pick_targets(client, wanted: str | list[str] | None) -> dict[str, list[WorkerInfo]]:
    """The targets to run on: ``"all"`` (or None) = every target with a worker; else the named ones."""
    available = targets(client)
    address = client.scheduler.address
    if not available:
        raise ClusterError(f"no saraikit worker is connected to {address}: start one per device with "
                           f"`saraikit worker --scheduler {address}`")
    if wanted in (None, "all", ["all"]):
        return available
    names = [t.strip() for t in (wanted.split(",") if isinstance(wanted, str) else wanted) if t.strip()]
    missing = [t for t in names if t not in available]
    if missing:
        raise ClusterError(f"target(s) {missing} have no worker on {address}; connected targets: "
                           f"{sorted(available)}")
    return {t: available[t] for t in names}


def submit(client, fn: Callable, *args, target: str | None = None, key: str | None = None, **kwargs):
    """Send ``fn(*args, **kwargs)`` to a worker of ``target`` (any saraikit worker when None), in its slot."""
    return client.submit(fn, *args, resources=job_resources(target), pure=False, key=key, **kwargs)


@dataclass
class JobOutcome:
    """How a job on a worker ended: ``ok`` with its value, or the reason it failed."""

    ok: bool
    value: Any = None
    reason: str = ""


def outcome(future, timeout_s: float | None = None) -> JobOutcome:
    """Wait for a job; a dead worker (after the retry), an exception or a timeout becomes a reason."""
    from distributed import KilledWorker

    try:
        return JobOutcome(True, future.result(timeout=timeout_s))
    except KilledWorker as exc:
        return JobOutcome(False, reason=f"worker died while running the job, twice (retried once on the same "
                                        f"target): {exc}")
    except TimeoutError:
        future.cancel()
        return JobOutcome(False, reason=f"no result within {timeout_s:g} s (job cancelled)")
    except Exception as exc:  # noqa: BLE001 - the job's own exception is the reason
        return JobOutcome(False, reason=f"{type(exc).__name__}: {exc}")
