"""Stack configs: which model and settings each pipeline stage uses.

A stack is a YAML file (the default ships as ``saraikit/stacks/default.yaml``)
with ``stages`` (name -> model, engine, settings, expects, produces) and
``links`` (pairs of stage names, producer first). A user points a stage at
their own model by naming it (anything ``saraikit models list`` shows) or by
giving a path. Unknown keys are rejected with the list of valid ones.

An ``engine`` is a built-in one (:data:`ENGINES`), a name registered with
``saraikit.engines.build.register_engine`` (which adds it to :data:`ENGINES`),
or a stage class of the user's own written ``package.module:ClassName``
(imported when the stage is built; see ``saraikit.engines.build``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import re

import yaml

from saraikit.core import paths
from saraikit.core.errors import ConfigError
from saraikit.core.hardware import target_slug

STACK_KEYS = {"stages", "links", "name", "pipeline", "provenance"}
# How the pipeline runs a stack (saraikit.engines.pipeline): early (speculative) STT and its delay.
# first_chunk: "sentence" (TTS starts on the first whole sentence), "clause" (on the first clause, at a comma) or
# "words" (on the first ``first_words`` words, or earlier at a clause or sentence end).
PIPELINE_OPTIONS = {"early_stt": False, "speculate_after_ms": 0.0, "first_chunk": "sentence", "first_words": 4}
FIRST_CHUNKS = ("sentence", "clause", "words")
STAGE_KEYS = {"model", "engine", "settings", "expects", "produces", "has", "language"}
KINDS = ("vad", "stt", "llm", "tts")  # a stage is named after its kind, optionally with a language: stt_es
BEST_STACK = "best_stack.yaml"
ENGINES = {"onnxruntime", "ctranslate2", "llama.cpp", "espeak-ng", "piper", "moonshine", "kokoro", "whisper-onnx"}
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def is_import_path(engine) -> bool:
    """True for an engine written as ``package.module:ClassName`` (a user's own stage class)."""
    return isinstance(engine, str) and IMPORT_PATH.fullmatch(engine) is not None


def best_stack_path(target: str | None = None) -> Path:
    """Where 07_stack_search writes the fastest stack within the quality budget for a hardware target."""
    return paths.outputs_dir() / target_slug(target) / BEST_STACK


def load_stack(name_or_path: str | Path = "default", target: str | None = None) -> dict:
    """Load and validate a stack: a packaged name (``default``), ``best`` or a YAML path.

    ``best`` is ``outputs/<target>/best_stack.yaml`` (written by
    07_stack_search; ``target`` defaults to this machine's slug).
    """
    if str(name_or_path) == "best":
        name_or_path = best_stack_path(target)
        if not name_or_path.exists():
            raise ConfigError(f"stack 'best': {name_or_path} does not exist; run notebook 07_stack_search "
                              f"(./run.sh workbook --only 07_stack_search) on this target first")
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ConfigError(f"stack file {path} does not exist")
        text = path.read_text()
    else:
        packaged = resources.files("saraikit.models.stacks").joinpath(f"{name_or_path}.yaml")
        if not packaged.is_file():
            names = sorted(p.name[:-5] for p in resources.files("saraikit.models.stacks").iterdir()
                           if p.name.endswith(".yaml"))
            raise ConfigError(f"no packaged stack named {name_or_path!r}; available: {names}, or give a .yaml path")
        text = packaged.read_text()
    try:
        stack = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"stack {name_or_path}: invalid YAML ({exc})") from exc
    validate_stack(stack, str(name_or_path))
    return stack


def pipeline_options(stack: dict, where: str = "stack") -> dict:
    """The stack's ``pipeline`` options with their defaults; unknown keys are a ConfigError."""
    given = stack.get("pipeline") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"{where}: pipeline must be a mapping of options, got {given!r}")
    unknown = set(given) - set(PIPELINE_OPTIONS)
    if unknown:
        raise ConfigError(f"{where}: pipeline has unknown option(s) {sorted(unknown)}; valid: {sorted(PIPELINE_OPTIONS)}")
    options = {**PIPELINE_OPTIONS, **given}
    if not isinstance(options["early_stt"], bool):
        raise ConfigError(f"{where}: pipeline.early_stt must be true or false, got {options['early_stt']!r}")
    if options["first_chunk"] not in FIRST_CHUNKS:
        raise ConfigError(f"{where}: pipeline.first_chunk must be one of {list(FIRST_CHUNKS)}, "
                          f"got {options['first_chunk']!r}")
    words = options["first_words"]
    if isinstance(words, bool) or not isinstance(words, int) or words < 1:
        raise ConfigError(f"{where}: pipeline.first_words must be an int >= 1, got {words!r}")
    after = options["speculate_after_ms"]
    if isinstance(after, bool) or not isinstance(after, (int, float)) or not after >= 0:
        raise ConfigError(f"{where}: pipeline.speculate_after_ms must be a number >= 0, got {after!r}")
    return options


def validate_stack(stack: dict, where: str = "stack") -> None:
    if not isinstance(stack, dict) or "stages" not in stack:
        raise ConfigError(f"{where}: expected a mapping with 'stages' (and optional 'links')")
    unknown = set(stack) - STACK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(STACK_KEYS)}")
    for name, stage in stack["stages"].items():
        if str(name).split("_", 1)[0] not in KINDS:
            raise ConfigError(f"{where}: stage {name!r} is not a known kind; name stages {list(KINDS)}, "
                              f"optionally with a language suffix (stt_es, tts_es)")
        if not isinstance(stage, dict) or "model" not in stage:
            raise ConfigError(f"{where}: stage {name!r} must be a mapping with a 'model'")
        unknown = set(stage) - STAGE_KEYS
        if unknown:
            raise ConfigError(f"{where}: stage {name!r} has unknown key(s) {sorted(unknown)}; "
                              f"valid keys: {sorted(STAGE_KEYS)}")
        engine = stage.get("engine")
        if engine is not None and engine not in ENGINES and not is_import_path(engine):
            raise ConfigError(f"{where}: stage {name!r} engine {engine!r} is not one of {sorted(ENGINES)} "
                              "nor a stage class of your own written 'package.module:ClassName'")
    pipeline_options(stack, where)
    for link in stack.get("links", []):
        if len(link) != 2 or any(s not in stack["stages"] for s in link):
            raise ConfigError(f"{where}: link {link!r} must name two stages of {sorted(stack['stages'])}")
