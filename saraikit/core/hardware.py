"""Hardware fingerprint and the hardware-target slug.

Every figure saraikit stores carries the fingerprint of the machine that
measured it. The *target* is a short, stable slug used to group results and
to name ``outputs/<target>/`` (the seeds reported per target: i7 quad-core,
i5 dual-core, Raspberry Pi 5, Apple M1).

Decisions:
- CPU facts come from py-cpuinfo (portable across x86 and ARM), cores and RAM
  from psutil. The fingerprint is computed once per process and cached.
- Only the ISA flags that change inference speed are kept (the full flag list
  is long and noisy). The names are normalised: ``avx512_vnni`` and
  ``avx512vnni`` both become ``avx512_vnni``; ARM ``asimd`` is ``neon`` and
  ``asimddp`` is ``dotprod``.
- The slug is ``<cpu brand>-<logical cores>t`` in lowercase ASCII, e.g.
  ``amd-epyc-2t``. ``SARAIKIT_TARGET`` or an explicit argument overrides it,
  so a user can call a machine ``i5-dualcore`` and keep that name.
- Core counts are capped at the CPUs this process may run on
  (``os.sched_getaffinity``): a process pinned with ``taskset -c 0`` or a
  cgroup cpuset is a one-core machine for inference, and its trials (spawned
  children inherit the affinity) run on that one core. So a Dask worker
  started under ``taskset -c 0`` on a 2-core box is a target of its own
  (``...-1t``); the fleet tests use exactly that.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata

import psutil

# Flag as it appears in /proc/cpuinfo (or py-cpuinfo) -> normalised name.
INFERENCE_FLAGS = {
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512_vnni": "avx512_vnni",
    "avx512vnni": "avx512_vnni",
    "avx512_bf16": "avx512_bf16",
    "avx_vnni": "avx_vnni",
    "avxvnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
    "neon": "neon",
    "asimd": "neon",
    "asimddp": "dotprod",
    "dotprod": "dotprod",
    "i8mm": "i8mm",
    "sve": "sve",
}

TRACKED_PACKAGES = (
    "onnxruntime",
    "onnx",
    "llama-cpp-python",
    "ctranslate2",
    "faster-whisper",
    "piper-tts",
    "numpy",
)


@dataclass
class Fingerprint:
    cpu_model: str
    arch: str
    physical_cores: int
    logical_cores: int
    cpu_mhz: float | None
    isa_flags: list[str]
    ram_bytes: int
    os: str
    python: str
    packages: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        """Short hash of the hardware facts (not the package versions)."""
        facts = {k: v for k, v in self.to_dict().items() if k not in ("packages", "cpu_mhz")}
        blob = json.dumps(facts, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def card(self) -> dict[str, str]:
        """Human-readable facts for a report's hardware card."""
        return {
            "CPU": self.cpu_model,
            "Architecture": self.arch,
            "Cores": f"{self.physical_cores} physical / {self.logical_cores} logical",
            "Inference ISA": ", ".join(self.isa_flags) or "none detected",
            "RAM": f"{self.ram_bytes / 2**30:.1f} GiB",
            "OS": self.os,
            "Python": self.python,
            **{name: version for name, version in self.packages.items()},
        }


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def normalise_flags(raw_flags) -> list[str]:
    return sorted({INFERENCE_FLAGS[f.lower()] for f in raw_flags if f.lower() in INFERENCE_FLAGS})


def usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity mask), or None where the OS cannot tell."""
    try:
        return len(os.sched_getaffinity(0)) or None
    except (AttributeError, OSError):  # macOS has no sched_getaffinity
        return None


def _capped(count: int) -> int:
    usable = usable_cpus()
    return min(count, usable) if usable else count


def physical_cores() -> int:
    """Physical CPU cores (logical ones when psutil cannot tell), capped at the usable CPUs."""
    return _capped(psutil.cpu_count(logical=False) or psutil.cpu_count() or 1)


def logical_cores() -> int:
    """Logical CPU cores, capped at the CPUs this process may run on (taskset, cpusets)."""
    return _capped(psutil.cpu_count(logical=True) or 1)


@functools.lru_cache(maxsize=1)
def fingerprint() -> Fingerprint:
    import cpuinfo  # imported lazily: it takes about a second on first call

    info = cpuinfo.get_cpu_info()
    hz = info.get("hz_advertised") or info.get("hz_actual")
    return Fingerprint(
        cpu_model=info.get("brand_raw") or platform.processor() or "unknown cpu",
        arch=info.get("arch_string_raw") or platform.machine(),
        physical_cores=physical_cores(),
        logical_cores=logical_cores(),
        cpu_mhz=round(hz[0] / 1e6, 1) if hz and hz[0] else None,
        isa_flags=normalise_flags(info.get("flags", [])),
        ram_bytes=psutil.virtual_memory().total,
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        packages=package_versions(),
    )


def slugify(text: str) -> str:
    text = re.sub(r"\((r|tm|c)\)", "", text.lower())
    text = re.sub(r"@.*$", "", text)  # drop the "@ 2.80GHz" tail
    text = re.sub(r"\b(cpu|processor|with radeon graphics)\b", "", text)
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


def target_slug(override: str | None = None, fp: Fingerprint | None = None) -> str:
    """The hardware target name: explicit override, then $SARAIKIT_TARGET, then derived."""
    chosen = override or os.environ.get("SARAIKIT_TARGET")
    if chosen:
        return slugify(chosen)
    fp = fp or fingerprint()
    return f"{slugify(fp.cpu_model)}-{fp.logical_cores}t"
