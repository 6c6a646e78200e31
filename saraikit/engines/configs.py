"""The engine config of a kind ("ort", "llama", "ct2"), for configs stored with their kind."""

from __future__ import annotations

from typing import Any, Mapping

from saraikit.core.config import KeyedConfig
from saraikit.core.errors import ConfigError
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.llama import LlamaConfig
from saraikit.engines.ort import OrtConfig


CONFIG_KINDS: dict[str, type[KeyedConfig]] = {"ort": OrtConfig, "llama": LlamaConfig, "ct2": Ct2WhisperConfig}


def config_from_dict(kind: str, values: Mapping[str, Any]) -> OrtConfig | LlamaConfig | Ct2WhisperConfig:
    """The config of engine ``kind`` ("ort", "llama" or "ct2") built from ``values``."""
    if kind not in CONFIG_KINDS:
        raise ConfigError(f"unknown config kind {kind!r}; valid kinds: {', '.join(sorted(CONFIG_KINDS))}")
    return CONFIG_KINDS[kind].from_dict(values)
