"""Loading a GGUF model: wall time, llama.cpp's own load time, and what it costs in memory.

Decisions:

- :func:`load` records RSS / PSS / USS and the kernel's anon/file split of
  RSS before and after ``Llama(...)``, and how much of the RSS is the GGUF
  mapping itself (see ``saraikit.core.memory`` for why RSS alone is not
  "memory this model costs": with ``use_mmap`` the GGUF is mapped, not
  copied). With ``use_mmap=False`` the weights are read into anonymous
  memory and nothing is mapped.
- :func:`measure_load` loads in a fresh process: in a process that already
  loaded and freed a model, the allocator reuses that memory and the deltas
  shrink to almost nothing.
- A model is named either by its manifest name in ``models/`` or by a path
  to any GGUF file (:func:`resolve_gguf`); the file's magic is checked first
  so a wrong file is a :class:`ModelError`, not a llama.cpp crash.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from saraikit.core.errors import ModelError
from saraikit.core.memory import MappedFile, MemorySnapshot, RssSplit, mapped_file, memory_snapshot, rss_split
from saraikit.core.trials import run_isolated
from saraikit.engines.llama import LlamaConfig, build_llama, read_perf
from saraikit.models import catalog

DEFAULT_MODEL = "gemma-3-270m-q4_k_m"
DEFAULT_SEED = 1234
DEFAULT_CONFIG = LlamaConfig(n_ctx=512, seed=DEFAULT_SEED)


@dataclass
class LoadedLlama:
    """A loaded model and what loading it cost."""

    llm: Any  # llama_cpp.Llama
    config: LlamaConfig
    model_path: str
    file_bytes: int
    load_s: float  # wall time of Llama(...)
    llama_load_ms: float  # llama.cpp's own t_load_ms
    memory_before: MemorySnapshot
    memory_after: MemorySnapshot
    mapped: MappedFile | None  # None when use_mmap is off (the weights were read into private memory)
    split_before: RssSplit | None = None
    split_after: RssSplit | None = None

    def memory_table(self) -> pd.DataFrame:
        """RSS, PSS, USS and RSS's anon/file split before and after loading, in MiB, with the GGUF size."""
        pairs = {name.replace("_bytes", "").upper(): (getattr(self.memory_before, name),
                                                      getattr(self.memory_after, name))
                 for name in ("rss_bytes", "pss_bytes", "uss_bytes")}
        if self.split_before is not None and self.split_after is not None:
            pairs["RSS anonymous"] = (self.split_before.anon_bytes, self.split_after.anon_bytes)
            pairs["RSS file-backed"] = (self.split_before.file_bytes, self.split_after.file_bytes)
        rows = []
        for metric, (before, after) in pairs.items():
            rows.append({"metric": metric, "before_MiB": _mib(before), "after_MiB": _mib(after),
                         "delta_MiB": _mib(after - before) if None not in (before, after) else None})
        rows.append({"metric": "GGUF file", "before_MiB": None, "after_MiB": _mib(self.file_bytes),
                     "delta_MiB": None})
        if self.mapped is not None:
            rows.append({"metric": "GGUF mapping resident (in RSS)", "before_MiB": None,
                         "after_MiB": _mib(self.mapped.rss_bytes), "delta_MiB": None})
        return pd.DataFrame(rows)


def _mib(value: int | None) -> float | None:
    return None if value is None else value / 2**20


GGUF_MAGIC = b"GGUF"


def check_gguf(model_path: str | Path) -> Path:
    """``model_path`` as a Path, or a ModelError when it is missing or not a GGUF file."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"GGUF model not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")
    return path


def load(model_path: str | Path, config: LlamaConfig | None = None) -> LoadedLlama:
    """Load a GGUF with ``config`` (default :data:`DEFAULT_CONFIG`) and record time and memory."""
    config = config or DEFAULT_CONFIG
    path = check_gguf(model_path)
    before, split_before = memory_snapshot(), rss_split()
    start = time.perf_counter()
    llm = build_llama(path, config)
    load_s = time.perf_counter() - start
    after, split_after = memory_snapshot(), rss_split()
    return LoadedLlama(llm, config, str(path), path.stat().st_size, load_s, read_perf(llm).t_load_ms,
                       before, after, mapped_file(path), split_before, split_after)


def load_worker(model_path: str, config: dict) -> LoadedLlama:
    """Trial worker: :func:`load` in this process, returned without the model (``llm=None``)."""
    loaded = load(model_path, LlamaConfig.from_dict(config))
    return dataclasses.replace(loaded, llm=None)


def measure_load(model_path: str | Path, config: LlamaConfig | None = None,
                 timeout_s: float = 300.0) -> LoadedLlama:
    """:func:`load` in a fresh process, so earlier models and allocations do not blur the memory figures."""
    config = config or DEFAULT_CONFIG
    check_gguf(model_path)
    outcome = run_isolated(load_worker, str(model_path), config.to_dict(), timeout_s=timeout_s)
    if not outcome.ok:
        raise ModelError(f"loading {model_path} in a fresh process failed ({outcome.status}): {outcome.reason()}")
    return outcome.value


@dataclass(frozen=True)
class ResolvedGguf:
    """A GGUF to measure: its path, the name results are stored under, and its sha256."""

    path: Path
    name: str
    sha256: str


def resolve_gguf(name_or_path: str | Path) -> ResolvedGguf:
    """A model name from ``models/`` (e.g. ``gemma-3-270m-q4_k_m``) or a path to any GGUF file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        path = check_gguf(candidate)
        return ResolvedGguf(path.resolve(), path.stem, catalog.sha256_file(path))
    if isinstance(name_or_path, Path) or os.sep in str(name_or_path) or str(name_or_path).endswith(".gguf"):
        raise ModelError(f"GGUF model not found: {candidate}")
    entry = catalog.model_entry(str(name_or_path))
    if entry.format != "gguf":
        raise ModelError(f"model {entry.name!r} is {entry.format}, not a GGUF (llama.cpp) model")
    path = check_gguf(catalog.model_path(entry.name))
    return ResolvedGguf(path, entry.name, entry.sha256)
