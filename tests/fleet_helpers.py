"""A Dask cluster on the loopback address, as a user would start one: a scheduler and saraikit workers.

Every process is started by the test in its own session and stopped by its
process-group id (never by name). One worker can be pinned to a single core
with ``taskset -c 0``; its fingerprint then counts one core
(``saraikit.core.hardware.usable_cpus``), so it is a target of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(models_dir: Path | str, outputs_dir: Path | str) -> dict:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(ROOT), "SARAIKIT_MODELS": str(models_dir), "SARAIKIT_OUTPUTS": str(outputs_dir),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})  # the head's: same numerics
    env.pop("SARAIKIT_TARGET", None)
    return env


class LoopbackCluster:
    """``dask scheduler`` + workers started with ``saraikit worker`` on 127.0.0.1."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.procs: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, command: list[str], env: dict) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=self.folder)
        self.procs[name] = proc
        return proc

    def start_scheduler(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        self._start("scheduler", [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", port,
                                  "--no-dashboard"], worker_env(self.folder, self.folder))

    def start_worker(self, name: str, models_dir: Path | str, pin_core: int | None = None) -> None:
        outputs = self.folder / f"{name}-outputs"
        outputs.mkdir(exist_ok=True)
        command = [sys.executable, "-m", "saraikit.cli", "worker", "--scheduler", self.address, "--timeout", "20",
                   "--name", name]
        if pin_core is not None:
            if not shutil.which("taskset"):
                raise RuntimeError("taskset is missing (util-linux): cannot pin a worker to one core")
            command = ["taskset", "-c", str(pin_core)] + command
        self._start(name, command, worker_env(models_dir, outputs))

    def wait_for_workers(self, client, count: int, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(client.scheduler_info(n_workers=-1)["workers"]) < count:
            if time.monotonic() > deadline:
                logs = {p.name: p.read_text()[-800:] for p in self.folder.glob("*.log")}
                raise TimeoutError(f"{count} workers did not connect within {timeout_s} s: {logs}")
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
