"""CTranslate2 Whisper models (plain or through faster-whisper) built from a :class:`Ct2WhisperConfig`, read back.

Decisions:

- :class:`Ct2WhisperConfig` is a frozen strict config
  (``saraikit.core.config``) whose defaults are CTranslate2's; the device is
  always the CPU. ``compute_type`` is checked against the types this CPU
  supports, as ctranslate2 reports them.
- :func:`read_back_ct2_options` reads the settings from the built model
  (never from the config); what cannot be read back is named in its
  docstring with the other way the tests verify it.
- ``ctranslate2`` and ``faster_whisper`` are imported inside functions:
  parsing a config must not load a native runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from saraikit.core.config import KeyedConfig, check_choice, check_int
from saraikit.core.errors import ModelError
from saraikit.engines.modelfiles import existing_dir

# Valid everywhere besides the device's own types: "default" keeps the saved type, "auto" picks the fastest.
CT2_GENERIC_COMPUTE_TYPES = ("auto", "default")


def ct2_compute_types() -> tuple[str, ...]:
    """Compute types valid on this machine's CPU, as ctranslate2 reports them."""
    import ctranslate2

    return tuple(sorted(ctranslate2.get_supported_compute_types("cpu"))) + CT2_GENERIC_COMPUTE_TYPES


@dataclass(frozen=True)
class Ct2WhisperConfig(KeyedConfig):
    """CTranslate2 Whisper options; the defaults are CTranslate2's. Device is always the CPU."""

    KIND: ClassVar[str] = "ct2"

    compute_type: str = "default"
    cpu_threads: int = 0  # threads per worker (ct2 intra_threads); 0 = ct2 default
    inter_threads: int = 1  # parallel workers (faster-whisper calls them num_workers)
    device: str = "cpu"

    def __post_init__(self) -> None:
        owner = type(self).__name__
        compute_type = check_choice(owner, "compute_type", self.compute_type, ct2_compute_types())
        object.__setattr__(self, "compute_type", compute_type)
        check_int(owner, "cpu_threads", self.cpu_threads, 0, note=" (0 = CTranslate2 default)")
        check_int(owner, "inter_threads", self.inter_threads, 1)
        check_choice(owner, "device", self.device, ("cpu",))


CT2_MODEL_FILES = ("model.bin",)


def build_ct2_whisper(model_dir: str | Path, config: Ct2WhisperConfig | None = None):
    """A ``ctranslate2.models.Whisper`` on CPU configured by ``config``."""
    config = config or Ct2WhisperConfig()
    directory = existing_dir(model_dir, "CTranslate2 model", CT2_MODEL_FILES)
    import ctranslate2

    try:
        return ctranslate2.models.Whisper(
            str(directory),
            device="cpu",
            compute_type=config.compute_type,
            inter_threads=config.inter_threads,
            intra_threads=config.cpu_threads,
        )
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"CTranslate2 could not load {directory}: {error}") from error


def build_faster_whisper(model_dir: str | Path, config: Ct2WhisperConfig | None = None):
    """A ``faster_whisper.WhisperModel`` on CPU configured by ``config``.

    The folder must hold ``tokenizer.json``: without it faster-whisper would
    fetch a tokenizer from the Hugging Face hub.
    """
    config = config or Ct2WhisperConfig()
    directory = existing_dir(model_dir, "CTranslate2 Whisper model", CT2_MODEL_FILES + ("tokenizer.json",))
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(
            str(directory),
            device="cpu",
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.inter_threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError) as error:
        raise ModelError(f"faster-whisper could not load {directory}: {error}") from error


def read_back_ct2_options(model) -> dict[str, Any]:
    """What the built model reports: ``compute_type``, ``inter_threads``, ``device``.

    Accepts a ``ctranslate2.models.Whisper`` or a ``faster_whisper.WhisperModel``.
    ``compute_type`` is the type CTranslate2 resolved, e.g. ``"int8"`` reads
    back as ``"int8_float32"`` on CPU and ``"default"`` as the saved type or
    its CPU substitute. ``cpu_threads`` is not exposed by ctranslate2; tests
    verify it by counting the OpenMP threads a worker starts on its first
    encode.
    """
    whisper = getattr(model, "model", model)  # faster-whisper wraps the ctranslate2 model
    return {
        "compute_type": whisper.compute_type,
        "inter_threads": whisper.num_workers,
        "device": whisper.device,
    }
