"""The one transcription path of the quality runs: STT systems and how they decode.

Decisions:

- A system (:class:`SttSystem`) is a CTranslate2 Whisper folder run end to end
  by faster-whisper, or the same folder with its encoder replaced by an ONNX
  file (:class:`saraikit.engines.whisper_onnx.OnnxEncoderWhisper`).  The ONNX
  variants decode with CTranslate2 at float32, so "ONNX FP32 vs CTranslate2
  float32" isolates the encoder runtime and "ONNX INT8 vs ONNX FP32" isolates
  the encoder's quantization.
- INT8 encoders are the files notebook 01 writes
  (``<model>-encoder.<variant>.onnx`` under ``outputs/<target>/quantized/``);
  pre-processed files, re-quantized variants (``<variant>.<variant>``) and
  hidden staging folders are excluded.
- Every system decodes the same way, stated once in :data:`DECODING_POLICY`:
  greedy (beam 1), no timestamps, one temperature of 0 (so *no* temperature
  fallback), no conditioning on previous text, VAD off, language given by the
  caller (English-only models get none).  faster-whisper's default fallback
  re-samples at temperature > 0 when a decode looks bad, which makes WER
  change from run to run; the ONNX path has no fallback at all, so the
  defaults would also make the comparison unfair.  The pipeline's STT stage
  is greedy too but keeps the fallback, so WER of noisy clips here can be
  worse than the pipeline's (a noisy clip can send Whisper into a loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from saraikit.core import paths
from saraikit.core.errors import ConfigError
from saraikit.engines.ct2 import Ct2WhisperConfig, build_faster_whisper
from saraikit.engines.ort import OrtConfig
from saraikit.engines.whisper_export import default_export
from saraikit.engines.whisper_onnx import OnnxEncoderWhisper
from saraikit.models import catalog

__all__ = [
    "DECODING", "DECODING_POLICY", "DECODING_TEXT", "FASTER_WHISPER_OPTIONS", "DecodingPolicy", "SttSystem",
    "Transcriber", "int8_encoders", "standard_systems",
]


@dataclass(frozen=True)
class DecodingPolicy:
    """How Whisper decodes whenever saraikit measures what it hears."""

    beam_size: int = 1
    temperature: float = 0.0  # a single temperature: faster-whisper falls back only through a list of them
    condition_on_previous_text: bool = False
    without_timestamps: bool = True
    vad_filter: bool = False

    def faster_whisper_options(self) -> dict:
        """``WhisperModel.transcribe`` keywords besides language, beam size and VAD (which callers pass themselves)."""
        return {"without_timestamps": self.without_timestamps, "temperature": self.temperature,
                "condition_on_previous_text": self.condition_on_previous_text}

    def config(self) -> dict:
        """The policy as trial configs store it (keys unchanged since the first runs, so trials stay comparable)."""
        return {"beam_size": self.beam_size, **self.faster_whisper_options()}


DECODING_POLICY = DecodingPolicy()
DECODING = DECODING_POLICY.config()
FASTER_WHISPER_OPTIONS = DECODING_POLICY.faster_whisper_options()
DECODING_TEXT = ("greedy (beam 1), no timestamps, temperature 0 without fallback, "
                 "no conditioning on previous text, VAD off, language from the dataset")


@dataclass(frozen=True)
class SttSystem:
    """One way to turn speech into text; ``label`` names it in every table and KPI."""

    label: str
    model: str  # manifest name of a CTranslate2 Whisper folder
    compute_type: str = "int8"  # CTranslate2 compute type (the decoder's, for ONNX-encoder systems)
    encoder: Path | None = None  # ONNX encoder file; None = CTranslate2 end to end

    @property
    def backend(self) -> str:
        return "ctranslate2" if self.encoder is None else "onnx-encoder"

    @property
    def english_only(self) -> bool:
        return self.model.endswith(".en")

    def supports(self, language: str) -> bool:
        return language == "en" or not self.english_only

    def sha256(self) -> str:
        """The ONNX encoder's sha256 for ONNX-encoder systems, else the model's (its model.bin)."""
        return catalog.sha256_file(self.encoder) if self.encoder else catalog.model_entry(self.model).sha256

    def config(self) -> dict:
        return {"system": self.label, "model": self.model, "backend": self.backend,
                "compute_type": self.compute_type, "encoder": self.encoder.name if self.encoder else None,
                "decoding": DECODING}


def int8_encoders(folder: str | Path, model: str = "whisper-base") -> list[tuple[str, Path]]:
    """``(variant, path)`` of the quantized encoders of ``model`` in ``folder`` (searched recursively)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stem = f"{model}-encoder."
    found = []
    for path in folder.rglob(f"{stem}*.onnx"):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        variant = path.name[len(stem):-len(".onnx")]
        if not hidden and variant != "preprocessed" and "." not in variant:
            found.append((variant, path))
    return sorted(found)


def standard_systems(target: str, max_int8: int | None = 1, int8_variants: Sequence[str] | None = None,
                     prefer: Sequence[str] = (),
                     only: Sequence[str] | None = None) -> tuple[list[SttSystem], list[str]]:
    """The systems notebook 06 compares, and notes on what was left out.

    INT8 encoders: the variants named in ``int8_variants`` (ConfigError if
    one is missing), else the first ``max_int8`` found, those in ``prefer``
    first, then by variant name. ``only`` keeps the systems with those labels
    (None: all), and a note says so.
    """
    systems = [
        SttSystem("whisper-tiny.en int8", "whisper-tiny.en", "int8"),
        SttSystem("whisper-base int8", "whisper-base", "int8"),
        SttSystem("whisper-base float32", "whisper-base", "float32"),
        SttSystem("whisper-base onnx-fp32", "whisper-base", "float32", default_export("whisper-base")),
    ]
    folder = paths.outputs_dir() / target / "quantized"
    found = int8_encoders(folder)
    notes = [] if found else [f"no INT8 whisper-base encoder in {folder} (notebook 01 makes them): INT8 skipped"]
    if int8_variants is not None:
        available = dict(found)
        missing = [variant for variant in int8_variants if variant not in available]
        if missing:
            raise ConfigError(f"INT8 encoder variant(s) {missing} not found in {folder}; "
                              f"available: {sorted(available) or 'none'}")
        found = [(variant, available[variant]) for variant in int8_variants]
    else:
        rank = {variant: position for position, variant in enumerate(prefer)}
        found = sorted(found, key=lambda item: (rank.get(item[0], len(rank)), item[0]))
        if max_int8 is not None and len(found) > max_int8:
            notes.append(f"{len(found)} INT8 encoders found, the first {max_int8} scored "
                         f"(preferred first: {', '.join(prefer) or 'none'}): "
                         + ", ".join(variant for variant, _ in found))
            found = found[:max_int8]
    systems += [SttSystem(f"whisper-base onnx-int8 {variant}", "whisper-base", "float32", path)
                for variant, path in found]
    if only:
        systems = [system for system in systems if system.label in only]
        notes.append(f"only {', '.join(only)} (parameter only_systems)")
    return systems, notes


class Transcriber:
    """A loaded :class:`SttSystem`: ``transcriber(samples_16k, language) -> text``, by :data:`DECODING_POLICY`."""

    def __init__(self, system: SttSystem, cpu_threads: int = 2):
        self.system = system
        model_dir = catalog.model_path(system.model)
        ct2 = Ct2WhisperConfig(compute_type=system.compute_type, cpu_threads=cpu_threads)
        if system.encoder is None:
            self._whisper = build_faster_whisper(model_dir, ct2)
            self._onnx = None
        else:
            self._whisper = None
            self._onnx = OnnxEncoderWhisper(model_dir, system.encoder, OrtConfig(intra_op_num_threads=cpu_threads), ct2)

    def __call__(self, samples: np.ndarray, language: str) -> str:
        language = None if self.system.english_only else language
        if self._onnx is not None:
            # OnnxEncoderWhisper has no timestamps and no temperature fallback: the beam is its only option
            return self._onnx.transcribe(samples, language=language, beam_size=DECODING_POLICY.beam_size).text
        segments, _ = self._whisper.transcribe(samples, language=language, beam_size=DECODING_POLICY.beam_size,
                                               vad_filter=DECODING_POLICY.vad_filter, **FASTER_WHISPER_OPTIONS)
        return " ".join(segment.text.strip() for segment in segments if segment.text.strip())
