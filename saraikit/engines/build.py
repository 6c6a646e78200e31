"""A (not yet loaded) stage from a stack's stage dict: which class, which engine config, which options.

Decisions:

- A stage dict names a ``model`` (manifest name or path, resolved by
  :func:`saraikit.models.catalog.resolve_model`), an optional ``engine`` (the
  first engine listed for the kind is the default) and ``settings``.
- ``settings`` is split between the engine config (OrtConfig,
  Ct2WhisperConfig, LlamaConfig; the ``whisper-onnx`` STT takes both
  OrtConfig keys for its encoder and Ct2WhisperConfig keys for its decoder,
  whose names do not overlap) and the stage's own ``SETTINGS``; a key that
  is neither is a ConfigError listing the valid ones, so a typo in a stack
  file is caught before anything is loaded.
- The stage is named after the stack's ``model`` entry.
- A stage that can refuse its ``language`` (Moonshine: English only) checks
  it and its other settings before the model is looked up, so a wrong
  language is reported as such even where the model is not provisioned.

Bring your own engine (a stage class of your own, e.g. another TTS):

- ``engine: "package.module:ClassName"`` in a stack YAML imports the class
  when the stage is built, in whatever process builds it (a notebook, the
  pipeline's worker, an isolated trial), so the whole workbook can run it;
  the module only has to be importable (on ``PYTHONPATH`` or installed).
- :func:`register_engine` gives a class a short name in this process
  (``engine: my-tts``); a stack that uses it works only where the
  registration ran, so prefer the import form for the workbook.
- The class must be a :class:`saraikit.engines.stage.Stage` subclass whose
  ``kind`` is the stage's kind. It is built as ``cls(model=<the stack's model
  entry as written>, name=<that entry>, **settings)``, plus
  ``language=<the stack's language>`` when the stack gives one and the
  constructor takes ``language``, plus ``config=<config_cls.from_dict(...)>``
  when a config class is given (``register_engine(config_cls=...)``, or a
  ``CONFIG`` class attribute for the import form; e.g. OrtConfig, so that
  ONNX Runtime options are settings). Settings are checked against
  ``cls.SETTINGS`` and the config's keys like every other engine's.
  ``model`` is passed as written so an engine may take a model name, a path
  or a label; :func:`saraikit.models.catalog.resolve_model` resolves a name.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import fields

from saraikit.core.errors import ConfigError
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.espeak import EspeakTTS
from saraikit.engines.kokoro import KokoroTTS
from saraikit.engines.llama import LlamaConfig
from saraikit.engines.llm_stage import LlamaLLM
from saraikit.engines.moonshine import MoonshineSTT, check_settings
from saraikit.engines.ort import OrtConfig
from saraikit.engines.piper import PiperTTS
from saraikit.engines.stage import Stage
from saraikit.engines.vad import SileroVAD
from saraikit.engines.whisper import FasterWhisperSTT
from saraikit.engines.whisper_trim import TrimmedWhisperSTT
from saraikit.models import stack as stack_files
from saraikit.models.catalog import resolve_model


def _config_keys(config_cls) -> set[str]:
    """Field names of an engine config class, of a tuple of them (their fields must not overlap), or of None."""
    classes = config_cls if isinstance(config_cls, tuple) else (config_cls,) if config_cls else ()
    return {f.name for cls in classes for f in fields(cls)}


def _split_settings(settings: dict, config_cls, stage_cls, where: str) -> tuple[dict, dict]:
    """Settings -> (engine config values, stage constructor options); unknown keys are a ConfigError."""
    config_keys = _config_keys(config_cls)
    unknown = set(settings) - config_keys - set(stage_cls.SETTINGS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {sorted(unknown)}; valid: {sorted(config_keys | set(stage_cls.SETTINGS))}"
        )
    config = {k: v for k, v in settings.items() if k in config_keys}
    options = {k: v for k, v in settings.items() if k in stage_cls.SETTINGS}
    return config, options


def _build_silero(spec, config, options):
    return SileroVAD(resolve_model(spec["model"]).path, OrtConfig.from_dict(config), **options)


def _build_whisper(spec, config, options):
    if spec.get("language"):
        options.setdefault("language", spec["language"])
    return FasterWhisperSTT(resolve_model(spec["model"]).path, Ct2WhisperConfig.from_dict(config), **options)


def _build_trimmed_whisper(spec, config, options):
    """Encoder session options (OrtConfig) and decoder options (Ct2WhisperConfig) share the flat ``settings``."""
    if spec.get("language"):
        options.setdefault("language", spec["language"])
    ort = {k: v for k, v in config.items() if k in _config_keys(OrtConfig)}
    ct2 = {k: v for k, v in config.items() if k not in ort}
    return TrimmedWhisperSTT(resolve_model(spec["model"]).path, OrtConfig.from_dict(ort),
                             Ct2WhisperConfig.from_dict(ct2), **options)


def _build_moonshine(spec, config, options):
    options.setdefault("language", spec.get("language") or "en")
    # Before the model is looked up: a wrong language or budget is reported even where the model is missing.
    check_settings(f"stt stage {spec['model']!r} (moonshine)",
                   **{k: v for k, v in options.items() if k in MoonshineSTT.SETTINGS})
    return MoonshineSTT(resolve_model(spec["model"]).path, OrtConfig.from_dict(config), **options)


def _build_llama(spec, config, options):
    return LlamaLLM(resolve_model(spec["model"]).path, LlamaConfig.from_dict(config), **options)


def _build_piper(spec, config, options):
    return PiperTTS(resolve_model(spec["model"]).path, OrtConfig.from_dict(config), **options)


def _build_espeak(spec, config, options):
    options.setdefault("voice", spec.get("language") or "en")
    return EspeakTTS(**options)


def _build_kokoro(spec, config, options):
    if spec.get("language"):
        options.setdefault("language", spec["language"])
    return KokoroTTS(resolve_model(spec["model"]).path, OrtConfig.from_dict(config), **options)


# kind -> engine -> (stage class, its engine config class or None, builder); the first engine is the default.
BUILDERS: dict[str, dict[str, tuple]] = {
    "vad": {"onnxruntime": (SileroVAD, OrtConfig, _build_silero)},
    "stt": {
        "ctranslate2": (FasterWhisperSTT, Ct2WhisperConfig, _build_whisper),
        "whisper-onnx": (TrimmedWhisperSTT, (OrtConfig, Ct2WhisperConfig), _build_trimmed_whisper),
        "moonshine": (MoonshineSTT, OrtConfig, _build_moonshine),
    },
    "llm": {"llama.cpp": (LlamaLLM, LlamaConfig, _build_llama)},
    "tts": {
        "onnxruntime": (PiperTTS, OrtConfig, _build_piper),
        "piper": (PiperTTS, OrtConfig, _build_piper),
        "espeak-ng": (EspeakTTS, None, _build_espeak),
        "kokoro": (KokoroTTS, OrtConfig, _build_kokoro),
    },
}
BUILT_IN = {kind: frozenset(engines) for kind, engines in BUILDERS.items()}


def _takes(stage_cls, parameter: str) -> bool:
    parameters = inspect.signature(stage_cls).parameters.values()
    return any(p.name == parameter or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _user_builder(stage_cls, config_cls):
    """The builder of a registered class (see the module docstring for what it is given)."""

    def build(spec, config, options):
        kwargs = {"model": spec["model"], **options}
        if spec.get("language") and _takes(stage_cls, "language"):
            kwargs.setdefault("language", spec["language"])
        if config_cls is not None:
            kwargs["config"] = config_cls.from_dict(config)
        try:
            return stage_cls(**kwargs)
        except TypeError as error:
            raise ConfigError(f"{spec.get('engine')}: {stage_cls.__qualname__}({', '.join(kwargs)}) failed: {error}; "
                              "its constructor must take model, name and its SETTINGS as keywords") from error

    return build


def register_engine(kind: str, name: str, stage_cls: type, config_cls: type | None = None) -> None:
    """Make ``stage_cls`` buildable as ``engine: name`` in ``kind`` stages of a stack (this process only).

    Registering a name again replaces the earlier class (a notebook cell run
    twice); a built-in engine's name cannot be taken. ``config_cls`` is an
    engine config such as OrtConfig whose keys then count as settings."""
    if kind not in BUILDERS:
        raise ConfigError(f"register_engine: unknown stage kind {kind!r}; valid kinds: {sorted(BUILDERS)}")
    if not isinstance(name, str) or not name.strip() or name in BUILT_IN[kind]:
        raise ConfigError(f"register_engine: engine name {name!r} must be a non-empty str that is not a built-in "
                          f"{kind} engine ({sorted(BUILT_IN[kind])})")
    if not (isinstance(stage_cls, type) and issubclass(stage_cls, Stage)):
        raise ConfigError(f"register_engine: {stage_cls!r} is not a subclass of saraikit.engines.stage.Stage")
    if getattr(stage_cls, "kind", None) != kind:
        raise ConfigError(f"register_engine: {stage_cls.__qualname__}.kind is {getattr(stage_cls, 'kind', None)!r}, "
                          f"not {kind!r}")
    if config_cls is not None and not hasattr(config_cls, "from_dict"):
        raise ConfigError(f"register_engine: config_cls {config_cls!r} has no from_dict (e.g. OrtConfig)")
    BUILDERS[kind][name] = (stage_cls, config_cls, _user_builder(stage_cls, config_cls))
    stack_files.ENGINES.add(name)


def import_engine(kind: str, path: str) -> type:
    """Import and register the class named by ``"package.module:ClassName"`` (ConfigError saying what failed)."""
    if not stack_files.is_import_path(path):
        raise ConfigError(f"{kind} stage: engine {path!r} is not of the form 'package.module:ClassName'")
    module_name, class_name = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{kind} stage: engine {path!r}: cannot import {module_name!r} ({error})") from error
    stage_cls = getattr(module, class_name, None)
    if stage_cls is None:
        raise ConfigError(f"{kind} stage: engine {path!r}: module {module_name!r} has no {class_name!r}")
    register_engine(kind, path, stage_cls, getattr(stage_cls, "CONFIG", None))
    return stage_cls


def engine_entry(kind: str, engine: str | None) -> tuple:
    """``(stage class, engine config class or None, builder)`` of an engine (None: the kind's default).

    An import path is imported and registered on first use; anything else
    unknown is a ConfigError listing the valid engines. The config class tells
    a caller which knobs apply (OrtConfig: ONNX Runtime threads, ...)."""
    if kind not in BUILDERS:
        raise ConfigError(f"unknown stage kind {kind!r}; valid kinds: {sorted(BUILDERS)}")
    engines = BUILDERS[kind]
    engine = engine or next(iter(engines))
    if engine not in engines and stack_files.is_import_path(engine):
        import_engine(kind, engine)
    if engine not in engines:
        raise ConfigError(f"{kind} stage: unknown engine {engine!r}; valid engines for {kind}: {sorted(engines)}, "
                          "or a stage class of your own written 'package.module:ClassName'")
    return engines[engine]


def build_stage(kind: str, spec: dict, **extra) -> Stage:
    """A (not yet loaded) stage from a stack's stage dict, e.g.
    ``{"model": "whisper-base", "engine": "ctranslate2", "settings": {"compute_type": "int8"}}``.

    ``settings`` may hold the engine config's keys (OrtConfig, Ct2WhisperConfig,
    LlamaConfig) and the stage's own ``SETTINGS``; ``extra`` passes options a
    YAML file cannot hold (e.g. ``prompt_builder``).
    """
    if kind not in BUILDERS:
        raise ConfigError(f"unknown stage kind {kind!r}; valid kinds: {sorted(BUILDERS)}")
    if not isinstance(spec, dict) or "model" not in spec:
        raise ConfigError(f"{kind} stage: expected a mapping with a 'model', got {spec!r}")
    engine = spec.get("engine") or next(iter(BUILDERS[kind]))
    stage_cls, config_cls, build = engine_entry(kind, engine)
    settings = spec.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{kind} stage: settings must be a mapping, got {type(settings).__name__}")
    config, options = _split_settings(settings, config_cls, stage_cls, f"{kind} stage ({engine})")
    return build(spec, config, {"name": spec["model"], **options, **extra})
