"""The search space of 07_stack_search: STT and TTS options per language, thread splits, early STT.

Decisions:

- A candidate is one language's stack: the default stack with its ``stt`` and
  ``tts`` stages replaced (the same stage serves as ``tts_es`` for Spanish, so
  the pipeline never falls back to espeak-ng behind the candidate's back), a
  thread split applied and the pipeline's early-STT option set. Candidates of
  different languages are searched separately; :func:`best_stack` joins the
  two winners into one stack with per-language stages (``stt_es``,
  ``tts_es``).
- STT options are stage specs; their labels say engine, precision and window:
  ``whisper-onnx int8 +128`` is the ONNX encoder (INT8) with the window
  trimmed to the audio plus 128 mel frames. ``margin_frames: 3000`` reaches
  the full 30 s window: the reference of the trimmed options.
- Moonshine is English only: it is never offered for another language. It is
  offered twice, converted to ONNX at load (the engine's default) and as the
  shipped ``.ort`` files, so the graph lever has its own paired ratio.
- Every option names a language explicitly (the caller knows it), except the
  ``detected`` reference row that measures language detection's cost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from saraikit.core.errors import ConfigError
from saraikit.core.io import atomic_write_text
from saraikit.engines.pipeline import THREAD_KEYS, apply_threads
from saraikit.models.stack import validate_stack

FULL_WINDOW = 3000  # mel frames: Whisper's 30 s window
REFERENCE_STT = "whisper-onnx fp32 full"  # the full-window FP32 reference of the trimmed options


@dataclass(frozen=True)
class StageOption:
    """One way to run a stage: a label and the stage spec of a stack."""

    label: str
    spec: dict = field(hash=False)


STT_ENGINES = ("faster-whisper", "whisper-onnx", "moonshine")
MOONSHINE_GRAPH = "onnx"  # the .ort files converted at load, so ORT folds the int8 weights (engines.moonshine)
MOONSHINE, MOONSHINE_SHIPPED = "moonshine base-en", "moonshine base-en (.ort as shipped)"


def stt_options(language: str, encoders=("fp32", "int8"), margins=(128,), min_windows=(None,),
                engines=STT_ENGINES) -> list[StageOption]:
    """The STT options for ``language``: references first, then the trimmed windows, then Moonshine.

    ``min_windows`` are the shortest trimmed windows in frames (None: the
    engine's default, see :mod:`saraikit.engines.whisper_trim`); each margin
    is tried with each of them. ``engines`` picks among :data:`STT_ENGINES`;
    the full-window FP32 reference is always there.
    """
    unknown = set(engines) - set(STT_ENGINES)
    if unknown:
        raise ConfigError(f"stack search: unknown STT engine(s) {sorted(unknown)}; valid: {list(STT_ENGINES)}")
    faster_whisper, moonshine = "faster-whisper" in engines, "moonshine" in engines
    for margin in margins:
        if not isinstance(margin, int) or margin < 0:
            raise ConfigError(f"stack search: margin {margin!r} must be an int >= 0 (mel frames of 10 ms)")
    options = [StageOption(REFERENCE_STT, _onnx_whisper(language, "fp32", FULL_WINDOW, None))]
    if faster_whisper:
        base = {"model": "whisper-base", "engine": "ctranslate2", "settings": {"compute_type": "int8"}}
        options.append(StageOption("faster-whisper int8 (language given)", {**base, "language": language}))
        options.append(StageOption("faster-whisper int8 (language detected)", dict(base)))
    for encoder in encoders if "whisper-onnx" in engines else ():
        if encoder != "fp32":
            options.append(StageOption(f"whisper-onnx {encoder} full", _onnx_whisper(language, encoder, FULL_WINDOW, None)))
        for margin, min_window in itertools.product(margins, min_windows):
            floor = "" if min_window is None else f" >={min_window / 100:g} s"
            options.append(StageOption(f"whisper-onnx {encoder} +{margin}{floor}",
                                       _onnx_whisper(language, encoder, margin, min_window)))
    if moonshine and language == "en":
        for graph, label in ((MOONSHINE_GRAPH, MOONSHINE), ("ort", MOONSHINE_SHIPPED)):
            options.append(StageOption(label, {"model": "moonshine-base-en", "engine": "moonshine", "language": "en",
                                               "settings": {"graph": graph}}))
    return options


def _onnx_whisper(language: str, encoder: str, margin: int, min_window_frames: int | None) -> dict:
    # The decoder runs at int8 like the default stack's faster-whisper, so "encoder" is the only precision lever.
    if margin >= FULL_WINDOW:
        return {"model": "whisper-base", "engine": "whisper-onnx", "language": language,
                "settings": {"encoder": encoder, "window_frames": "full", "compute_type": "int8"}}
    settings = {"encoder": encoder, "margin_frames": margin, "compute_type": "int8"}
    if min_window_frames is not None:
        settings["min_window_frames"] = min_window_frames
    return {"model": "whisper-base", "engine": "whisper-onnx", "language": language, "settings": settings}


def tts_options(language: str, kokoro_styles=("jm_kumo",), espeak: bool = True, piper: bool = True) -> list[StageOption]:
    """The voices for ``language``: Piper (English only), Kokoro styles, espeak-ng.

    Labels are 06_quality's voice labels, so the search can read their measured intelligibility.
    """
    options = []
    if piper and language == "en":
        options.append(StageOption("piper-en_US-joe-medium", {"model": "piper-en_US-joe-medium", "engine": "onnxruntime"}))
    for style in kokoro_styles:
        options.append(StageOption(f"kokoro-{style}-{language}", {"model": "kokoro-82m", "engine": "kokoro",
                                                                  "language": language, "settings": {"style": style}}))
    if espeak:
        options.append(StageOption(f"espeak-ng-{language}", {"model": "espeak-ng", "engine": "espeak-ng",
                                                             "language": language}))
    return options


@dataclass(frozen=True)
class Candidate:
    """One language's stack in the search."""

    language: str
    stt: StageOption
    tts: StageOption
    threads: tuple[tuple[str, int], ...]  # sorted (key, value) pairs of THREAD_KEYS
    early_stt: bool
    first_chunk: str = "sentence"  # what the TTS speaks first: the first "sentence", "clause" or "words" (four)

    @property
    def label(self) -> str:
        split = "/".join(f"{k.split('_')[0]}{v}" for k, v in self.threads)
        return (f"{self.stt.label} | {self.tts.label} | {split} | {'early' if self.early_stt else 'late'} STT"
                f" | first {self.first_chunk}")

    @property
    def stack_key(self) -> tuple:
        """What needs a worker process of its own: the stages and threads (pipeline options do not)."""
        return (self.stt.label, self.tts.label, self.threads)

    def pipeline(self) -> dict:
        return {"early_stt": self.early_stt, "speculate_after_ms": 0.0, "first_chunk": self.first_chunk}

    def config(self) -> dict:
        return {"language": self.language, "stt": self.stt.label, "tts": self.tts.label,
                "threads": dict(self.threads), **self.pipeline()}

    def stack(self, base: dict) -> dict:
        stages = dict(base["stages"])
        stages["stt"] = dict(self.stt.spec)
        stages["tts"] = dict(self.tts.spec)
        if self.language != "en":
            stages[f"tts_{self.language}"] = dict(self.tts.spec)
        stack = {**base, "stages": stages, "pipeline": self.pipeline()}
        stack = apply_threads(stack, dict(self.threads))
        validate_stack(stack, f"stack search candidate {self.label}")
        return stack


def thread_splits(values=((2, 2, 2), (1, 2, 2))) -> list[tuple[tuple[str, int], ...]]:
    """(ort, ct2, llama) thread counts -> sorted key/value tuples."""
    return [tuple(sorted(zip(THREAD_KEYS, split))) for split in values]


def candidates(language: str, stt: list[StageOption], tts: list[StageOption], splits, early=(False, True),
               first_chunks=("sentence",)) -> list[Candidate]:
    return [Candidate(language, s, t, split, e, chunk)
            for s, t, split, e, chunk in itertools.product(stt, tts, splits, early, first_chunks)]


def best_stack(base: dict, winners: dict[str, Candidate], evidence: dict[str, dict]) -> dict:
    """One stack from each language's winner: ``stt``/``tts`` for English, ``stt_es``/``tts_es`` for Spanish.

    The thread split and the pipeline options (early STT, first chunk) are the
    English winner's (one LLM and one pipeline serve both languages); the Spanish figures in ``evidence`` say under which
    split they were measured.
    """
    if not winners:
        raise ConfigError("no candidate met the quality budget in any language: there is no best stack to write")
    first = winners.get("en") or next(iter(winners.values()))
    stages = dict(first.stack(base)["stages"])
    for language, winner in winners.items():
        suffix = "" if winner is first else f"_{language}"
        stages[f"stt{suffix}"] = {**winner.stt.spec, "language": language}
        stages[f"tts{suffix}"] = dict(winner.tts.spec)
    if "es" in winners and "tts_es" not in stages:
        stages["tts_es"] = dict(winners["es"].tts.spec)
    stack = {"name": "best", "stages": stages, "links": base.get("links", []),
             "pipeline": first.pipeline(),
             "provenance": {"written_by": "07_stack_search",
                            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "per_language": evidence}}
    validate_stack(stack, "best stack")
    return stack


def write_best_stack(stack: dict, path: Path) -> Path:
    """Write the stack atomically (an earlier best stack stays until the new one is complete)."""
    header = ("# Written by notebooks/07_stack_search.ipynb: the fastest stack within the quality budget per\n"
              "# language on this hardware target. Run it with stack=\"best\" (05_e2e_latency, saraikit).\n")
    atomic_write_text(path, header + yaml.safe_dump(stack, sort_keys=False, allow_unicode=True))
    return path
