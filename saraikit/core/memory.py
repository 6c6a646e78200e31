"""What a process costs in memory: RSS, USS, PSS, the peak, the kernel's anon/file split, mapped files.

Decisions:

- Peak memory is ``ru_maxrss`` of the process (the true peak since the
  process started; meaningful in an isolated trial process), never reported
  below the current RSS. Current RSS, USS and PSS come from psutil where the
  OS provides them.
- RSS counts file-backed pages, so "RSS after loading a model" is not "memory
  this model costs" when the model is memory-mapped (a GGUF with
  ``use_mmap``): its pages live in the page cache, are shared with any other
  process mapping the same file, and can be dropped and re-read by the
  kernel under memory pressure. PSS divides shared pages between the
  processes mapping them; USS counts pages no other process maps, which
  *includes* a mapped file's pages whenever this is the only process mapping
  it. The kernel's own split is the clearest: ``RssAnon`` (private memory:
  KV cache, compute buffers, repacked weights, the Python heap) versus
  ``RssFile`` (mappings and shared libraries), from :func:`rss_split`.
  :func:`mapped_file` reports how much of the RSS is one mapped file.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil


@dataclass
class MemorySnapshot:
    rss_bytes: int
    peak_rss_bytes: int
    uss_bytes: int | None = None
    pss_bytes: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def memory_snapshot() -> MemorySnapshot:
    """Current RSS, USS, PSS (where available) and the process's peak RSS so far."""
    proc = psutil.Process()
    rss = proc.memory_info().rss
    uss = pss = None
    try:
        full = proc.memory_full_info()
        uss = getattr(full, "uss", None)
        pss = getattr(full, "pss", None)
    except (psutil.AccessDenied, AttributeError):
        pass
    # ru_maxrss is sampled by the kernel at its own moments; never report a peak below what we see now.
    return MemorySnapshot(rss_bytes=rss, peak_rss_bytes=max(rss, peak_rss_bytes()), uss_bytes=uss, pss_bytes=pss)


@dataclass
class MappedFile:
    """How much of one mapped file is resident in this process (from /proc/self/smaps)."""

    path: str
    file_bytes: int
    rss_bytes: int  # resident pages of the mapping (counted in the process RSS)
    pss_bytes: int  # the same, shared pages divided by the number of processes mapping them
    private_bytes: int  # pages of the mapping no other process has


def mapped_file(path: str | Path) -> MappedFile | None:
    """Resident size of ``path``'s mapping in this process; None when it is not mapped."""
    wanted = os.path.realpath(path)
    for mapping in psutil.Process().memory_maps(grouped=True):
        if mapping.path and os.path.realpath(mapping.path) == wanted:
            return MappedFile(wanted, os.path.getsize(wanted), mapping.rss, mapping.pss,
                              mapping.private_clean + mapping.private_dirty)
    return None


@dataclass(frozen=True)
class RssSplit:
    """The kernel's split of this process's RSS (``/proc/self/status``; Linux only)."""

    anon_bytes: int  # private anonymous memory: KV cache, compute buffers, repacked weights, Python heap
    file_bytes: int  # file-backed pages: the mapped GGUF, shared libraries
    shmem_bytes: int


def rss_split() -> RssSplit | None:
    """RssAnon / RssFile / RssShmem of this process, or None where /proc is not available."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(value.split()[0]) * 1024  # reported in kB
    if len(fields) < 3:
        return None
    return RssSplit(fields["RssAnon"], fields["RssFile"], fields["RssShmem"])

