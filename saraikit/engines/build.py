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
"""

from __future__ import annotations

from dataclasses import fields

from saraikit.core.errors import ConfigError
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.espeak import EspeakTTS
from saraikit.engines.llama import LlamaConfig
from saraikit.engines.llm_stage import LlamaLLM
from saraikit.engines.moonshine import MoonshineSTT, check_settings
from saraikit.engines.ort import OrtConfig
from saraikit.engines.piper import PiperTTS
from saraikit.engines.stage import Stage
from saraikit.engines.vad import SileroVAD
from saraikit.engines.whisper import FasterWhisperSTT
from saraikit.engines.whisper_trim import TrimmedWhisperSTT
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
    },
}


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
    engines = BUILDERS[kind]
    engine = spec.get("engine") or next(iter(engines))
    if engine not in engines:
        raise ConfigError(f"{kind} stage: unknown engine {engine!r}; valid engines for {kind}: {sorted(engines)}")
    settings = spec.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{kind} stage: settings must be a mapping, got {type(settings).__name__}")
    stage_cls, config_cls, build = engines[engine]
    config, options = _split_settings(settings, config_cls, stage_cls, f"{kind} stage ({engine})")
    return build(spec, config, {"name": spec["model"], **options, **extra})
