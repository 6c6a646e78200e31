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

from saraikit.core.errors import ConfigError

STACK_KEYS = {"stages", "links", "name"}
STAGE_KEYS = {"model", "engine", "settings", "expects", "produces", "has", "language"}
ENGINES = {"onnxruntime", "ctranslate2", "llama.cpp", "espeak-ng", "piper", "kokoro"}
IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def is_import_path(engine) -> bool:
    """True for an engine written as ``package.module:ClassName`` (a user's own stage class)."""
    return isinstance(engine, str) and IMPORT_PATH.fullmatch(engine) is not None


def load_stack(name_or_path: str | Path = "default") -> dict:
    """Load and validate a stack: a packaged name (``default``) or a YAML path."""
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


def validate_stack(stack: dict, where: str = "stack") -> None:
    if not isinstance(stack, dict) or "stages" not in stack:
        raise ConfigError(f"{where}: expected a mapping with 'stages' (and optional 'links')")
    unknown = set(stack) - STACK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(STACK_KEYS)}")
    for name, stage in stack["stages"].items():
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
    for link in stack.get("links", []):
        if len(link) != 2 or any(s not in stack["stages"] for s in link):
            raise ConfigError(f"{where}: link {link!r} must name two stages of {sorted(stack['stages'])}")
