"""Small builders shared by tests (not fixtures, so they can be imported by trial workers)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_matmul_model(path: Path, size: int = 8, seed: int = 0) -> Path:
    """A float32 MatMul + Add model with input x[batch, size] and output y."""
    rng = np.random.default_rng(seed)
    weight = helper.make_tensor("W", TensorProto.FLOAT, [size, size], rng.standard_normal((size, size)).astype(np.float32).ravel())
    bias = helper.make_tensor("B", TensorProto.FLOAT, [size], rng.standard_normal(size).astype(np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", size])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


# Trial workers: must live at module top level so a spawned process can import them.
def worker_returns(value):
    return value


def worker_raises(message):
    raise RuntimeError(message)


def worker_segfaults():
    import ctypes

    ctypes.string_at(0)


def worker_exits(code):
    os._exit(code)


def worker_hangs(seconds):
    time.sleep(seconds)
    return "woke up"


def worker_allocates(megabytes):
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def worker_memory_growth(megabytes):
    """Snapshots before and after touching a fresh allocation (in a clean process)."""
    from saraikit.core.memory import memory_snapshot

    before = memory_snapshot()
    block = bytearray(megabytes * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    after = memory_snapshot()
    return before, after, len(block)


def run_python(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (for process-wide state: ORT's env allocator, thread counts)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300
    )
