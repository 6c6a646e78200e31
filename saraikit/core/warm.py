"""A warm trial process: one spawned interpreter that runs trial after trial, keeping its imports.

Starting a fresh process per trial costs an interpreter, numpy, ONNX Runtime
and saraikit's imports (1-4 s on the 2-core reference box) before the model
loads; for a search of many short trials that cost is most of the wall time
(the adaptive search of the first round spent 70% of exhaustive's time, mostly
starting processes). A :class:`WarmProcess` pays it once.

What is and is not isolated:

- The function runs in *another* process (spawned, not forked), so a crash,
  a timeout or a memory-limit hit is a failed trial, never a failed caller,
  as with :func:`saraikit.core.trials.run_isolated`. After a crash or a
  timeout the process is replaced before the next trial.
- Trials in one warm process share process-wide state: imports, the
  allocator's state, ONNX Runtime's environment. A trial that builds a fresh
  session per configuration is isolated from the previous one in what changes
  between configurations (threads, graph optimizations, the session's arena);
  anything process-wide (an environment allocator, a global thread pool)
  must still run in a fresh process: callers check that
  (e.g. ``OrtConfig.uses_env_arena``).
- One process is one sample of the machine's state (see
  :mod:`saraikit.core.spread`): callers that compare configurations recycle
  the warm process between rounds (:meth:`WarmProcess.restart`), so the
  configurations of a round share one process and each round gets a new one.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from typing import Callable

from saraikit.core.errors import MeasurementError
from saraikit.core.trials import TrialResult, call_and_send, describe_exit


def _serve(conn, memory_limit_bytes):
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        fn, args, kwargs = message
        call_and_send(conn, fn, args, kwargs)


class WarmProcess:
    """``run(fn, *args)`` in one long-lived spawned process; restarted after a crash or a timeout."""

    def __init__(self, memory_limit_bytes: int | None = None):
        self.memory_limit_bytes = memory_limit_bytes
        self._proc = None
        self._conn = None
        self.trials = 0  # trials run by the current process
        self.starts = 0  # processes started so far

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.alive else None

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_serve, args=(child, self.memory_limit_bytes), daemon=True)
        self._proc.start()
        child.close()
        self.trials = 0
        self.starts += 1

    def restart(self) -> None:
        """A fresh process for what follows (e.g. the next round of a search)."""
        self.close()
        self.start()

    def run(self, fn: Callable, *args, timeout_s: float = 600.0, **kwargs) -> TrialResult:
        if not timeout_s or timeout_s <= 0:
            raise MeasurementError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
        if not self.alive:
            self.start()
        start = time.perf_counter()
        try:
            self._conn.send((fn, args, kwargs))
        except (BrokenPipeError, OSError):
            return self._died(start)
        deadline = start + timeout_s
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self._kill()
                return TrialResult("timeout", error=f"trial exceeded its timeout of {timeout_s:g} s; the warm "
                                   "process was killed and is replaced", duration_s=time.perf_counter() - start)
            if self._conn.poll(min(remaining, 0.5)):
                try:
                    status, value, error = self._conn.recv()
                except (EOFError, OSError):
                    return self._died(start)
                self.trials += 1
                return TrialResult(status, value=value, error=error, duration_s=time.perf_counter() - start)
            if not self._proc.is_alive() and not self._conn.poll(0):
                return self._died(start)

    def _died(self, start: float) -> TrialResult:
        self._proc.join(5)
        code = self._proc.exitcode
        self._kill()
        return TrialResult("crashed", error=f"warm {describe_exit(code)}", exitcode=code,
                           duration_s=time.perf_counter() - start)

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        """Ask the process to exit (kill it if it does not within 5 s)."""
        if self.alive:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(5)
        self._kill()

    def __enter__(self) -> "WarmProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
