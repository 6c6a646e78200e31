"""Isolated trials: run a function in a fresh process, with a timeout.

Threads, memory arenas and loaded models are process-wide state; a trial
that changes them must not leak into the next configuration. Like pyperf's
workers and optimum-benchmark's process launcher, a trial runs in a freshly
*spawned* interpreter (not forked: a fork would inherit the parent's thread
pools and allocator state).

A trial never crashes its caller. It ends in one of four statuses:

- ``ok``       the function returned; ``value`` holds what it returned
- ``error``    the function raised; ``error`` holds the exception and traceback
- ``crashed``  the process died (segfault, ``os._exit``, killed for memory)
- ``timeout``  it ran past ``timeout_s`` and was killed

On Linux a trial dies with its parent (:func:`die_with_parent`), so a killed
caller (a Dask worker hit by ``kill -9``) never leaves a trial running.

The function must be importable by name (defined at module top level, e.g. in
``saraikit``), because a spawned process imports it afresh; that is also why
notebook-defined functions cannot be trials.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from saraikit.core.errors import MeasurementError

STATUSES = ("ok", "error", "crashed", "timeout")


@dataclass
class TrialResult:
    status: str
    value: Any = None
    error: str | None = None
    exitcode: int | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def reason(self) -> str:
        """One line saying why a trial failed (empty when it succeeded)."""
        if self.ok:
            return ""
        return (self.error or self.status).strip().splitlines()[-1] if self.status == "error" \
            else (self.error or self.status)


def call_and_send(conn, fn, args, kwargs) -> None:
    """Run ``fn`` and send ``(status, value, error)`` on ``conn``; nothing escapes (also used by warm processes)."""
    try:
        value = fn(*args, **kwargs)
        conn.send(("ok", value, None))
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        detail = "".join(traceback.format_exception(exc))
        try:
            conn.send(("error", None, f"{type(exc).__name__}: {exc}\n{detail}"))
        except Exception:  # the exception itself may not pickle
            conn.send(("error", None, f"{type(exc).__name__}: {exc}"))


def die_with_parent() -> bool:
    """Linux: have the kernel SIGKILL this process when the thread that started it dies (PR_SET_PDEATHSIG).

    A Dask worker killed mid-trial must not leave its trial measuring beside
    the retry on the same machine. The trial's parent thread waits for the
    trial, so it outlives it unless the parent process dies. Best effort:
    False where prctl is unavailable.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(1, signal.SIGKILL, 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _child(conn, fn, args, kwargs, memory_limit_bytes):
    die_with_parent()
    if memory_limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    try:
        call_and_send(conn, fn, args, kwargs)
    finally:
        conn.close()


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "process did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? the kernel OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"process killed by {name}{hint}"
    return f"process exited with code {exitcode} before returning a result"


def run_isolated(fn: Callable, *args, timeout_s: float = 600.0,
                 memory_limit_bytes: int | None = None, **kwargs) -> TrialResult:
    """Run ``fn(*args, **kwargs)`` in a fresh spawned process and report how it ended."""
    if not timeout_s or timeout_s <= 0:
        raise MeasurementError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child_conn, fn, args, kwargs, memory_limit_bytes),
                       daemon=True)
    start = time.perf_counter()
    proc.start()
    child_conn.close()
    message = None
    deadline = start + timeout_s
    # Receive before join: a large result would otherwise block the child on a full pipe.
    while message is None:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            break
        if parent_conn.poll(min(remaining, 0.5)):
            try:
                message = parent_conn.recv()
            except EOFError:  # the child died without sending anything
                break
        elif not proc.is_alive():
            if parent_conn.poll(0):
                continue
            break
    duration = time.perf_counter() - start

    if message is None and proc.is_alive() and time.perf_counter() >= deadline:
        proc.terminate()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        return TrialResult("timeout", error=f"trial exceeded its timeout of {timeout_s:g} s and was killed",
                           exitcode=proc.exitcode, duration_s=duration)
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
    parent_conn.close()
    if message is None:
        return TrialResult("crashed", error=describe_exit(proc.exitcode), exitcode=proc.exitcode,
                           duration_s=duration)
    status, value, error = message
    return TrialResult(status, value=value, error=error, exitcode=proc.exitcode, duration_s=duration)
