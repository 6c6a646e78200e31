"""Strict dataclass configs: one loader that rejects unknown keys, and value checks.

Decisions:

- A config is a plain dataclass. :meth:`StrictConfig.from_dict` is the one
  way to build one from a dict (YAML, JSON, a results row): a key that is not
  a field is an error naming every valid key, never silently dropped, because
  a typo such as ``num_threads`` would otherwise measure the default.
- Validation runs in ``__post_init__``, so a config built in code and one read
  from a dict are checked the same way; ``from_dict`` adds only the
  unknown-key check. ``dataclasses.replace`` validates again.
- Each config class says which error it raises (``CONFIG_ERROR``), so a
  timing plan keeps raising :class:`MeasurementError` and an engine config
  :class:`ConfigError`.
- Enum-like options are strings, accepted in any case and stored in their
  canonical spelling (:func:`check_choice`), so configs stay JSON/YAML
  friendly and a key does not depend on how a user typed them.
- :meth:`KeyedConfig.key` is ``"<kind>-<12 hex>"``: a short SHA-256 of the
  sorted JSON of ``to_dict()``, stable across processes; results rows use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, ClassVar, Mapping

from saraikit.core.errors import ConfigError, SaraikitError


class StrictConfig:
    """``from_dict`` (unknown keys rejected) and ``to_dict`` for a dataclass config."""

    CONFIG_ERROR: ClassVar[type[SaraikitError]] = ConfigError
    CONFIG_LABEL: ClassVar[str] = ""  # how messages name the config; the class name when empty

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        label = cls.CONFIG_LABEL or cls.__name__
        if not isinstance(values, Mapping):
            raise cls.CONFIG_ERROR(f"{label}: expected a mapping of options, got {type(values).__name__}")
        valid = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise cls.CONFIG_ERROR(f"unknown {label} keys {unknown}; valid keys: {', '.join(valid)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class KeyedConfig(StrictConfig):
    """A :class:`StrictConfig` with a stable short key, ``"<KIND>-<12 hex>"``."""

    KIND: ClassVar[str]

    def key(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return f"{self.KIND}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def bad_value(owner: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{owner}.{key}: invalid value {value!r} ({type(value).__name__}); expected {expected}")


def check_int(owner: str, key: str, value: Any, minimum: int, maximum: int | None = None, note: str = "") -> int:
    # bool is an int subclass; True as a thread count is a typo, not a number.
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if in_range and maximum is not None:
        in_range = value <= maximum
    if not in_range:
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise bad_value(owner, key, value, f"an int {bounds}{note}")
    return value


def check_optional_int(owner: str, key: str, value: Any, minimum: int, note: str = "") -> int | None:
    if value is None:
        return None
    return check_int(owner, key, value, minimum, note=f" or None{note}")


def check_bool(owner: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_value(owner, key, value, "true or false")
    return value


def check_choice(owner: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    """Case-insensitive match against ``choices``; returns the canonical spelling."""
    by_lower = {choice.lower(): choice for choice in choices}
    if isinstance(value, str) and value.lower() in by_lower:
        return by_lower[value.lower()]
    listed = ", ".join(repr(choice) for choice in sorted(choices))
    raise bad_value(owner, key, value, f"one of {listed} (any case)")


def check_count(value: Any, name: str, where: str, minimum: int = 1) -> int:
    """A function argument that must be an int >= ``minimum`` (repetitions, token counts, ...)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return value
