"""Feeds checked against a model's inputs, and the calibration data reader ORT pulls them from.

Decisions
---------
- Feeds that do not match the model's inputs (names, dtypes, static dims)
  are a ConfigError before any work; nothing is cast, so a float64 array for
  a float32 input is an error, not a silent copy.
- ``CalibrationReader`` is duck-typed: ORT only checks for ``get_next``.
  ``set_range`` serves ORT's ``CalibStridedMinMax`` and ``rewind`` lets one
  reader serve several variants.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from saraikit.core.errors import ConfigError
from saraikit.experiments.synthetic import input_specs


def check_feeds(model, feeds_list: Sequence[Mapping[str, Any]], what: str = "feed") -> list[dict[str, np.ndarray]]:
    """Feeds as arrays, checked against the model's inputs (names, dtypes, static dims).

    ``model`` is an ``.onnx`` path, a ModelInfo or a session. Nothing is cast:
    a float64 array for a float32 input is an error, not a silent copy."""
    specs = {spec.name: spec for spec in input_specs(model)}
    if isinstance(feeds_list, Mapping) or not isinstance(feeds_list, Sequence) or not feeds_list:
        raise ConfigError(f"{what}s: expected a non-empty list of {{input name: array}} dicts")
    checked = []
    for index, feeds in enumerate(feeds_list):
        where = f"{what} {index}"
        if not isinstance(feeds, Mapping):
            raise ConfigError(f"{where}: expected a dict of input name -> array, got {type(feeds).__name__}")
        unknown = sorted(set(feeds) - set(specs))
        missing = sorted(set(specs) - set(feeds))
        if unknown or missing:
            raise ConfigError(
                f"{where}: unknown input(s) {unknown}, missing input(s) {missing}; the model's inputs are "
                f"{sorted(specs)}"
            )
        checked.append({name: _checked_array(where, specs[name], value) for name, value in feeds.items()})
    return checked


def _checked_array(where: str, spec, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype != np.dtype(spec.dtype):
        raise ConfigError(f"{where}, input {spec.name!r}: dtype {array.dtype}, the model expects {spec.dtype}")
    static_ok = all(not isinstance(dim, int) or dim == size for dim, size in zip(spec.shape, array.shape))
    if array.ndim != len(spec.shape) or not static_ok:
        raise ConfigError(
            f"{where}, input {spec.name!r}: shape {list(array.shape)}, the model expects {spec.shape}"
        )
    return array


class CalibrationReader:
    """ORT calibration data over a list of feed dicts, validated against the model first.

    Duck-typed ``onnxruntime.quantization.CalibrationDataReader`` (ORT checks
    for ``get_next``). ``set_range`` serves ORT's ``CalibStridedMinMax``;
    ``rewind`` lets one reader serve several variants."""

    def __init__(self, model, feeds_list: Sequence[Mapping[str, Any]]):
        self.feeds = check_feeds(model, feeds_list, what="calibration feed")
        self._next, self._end = 0, len(self.feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        self._next += 1
        return self.feeds[self._next - 1]

    def __len__(self) -> int:
        return len(self.feeds)

    def __iter__(self):
        return iter(self.get_next, None)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self.feeds))

    def rewind(self) -> None:
        self.set_range(0, len(self.feeds))
