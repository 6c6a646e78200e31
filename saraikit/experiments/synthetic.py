"""Synthetic inputs generated from an ONNX model's input spec.

THESE INPUTS ARE SYNTHETIC. They have the right names, dtypes and shapes, so
a session runs and its latency can be timed, but their values are noise: any
output quality, accuracy or even output length measured with them means
nothing about real speech or text, and data-dependent models (a TTS whose
output length follows its phonemes, a VAD that skips silence) may run faster
or slower than on real input. Every result produced from them must be
labelled synthetic: store ``INPUT_KIND`` (``"synthetic"``) with the result.

Decisions
---------
- The spec comes from an ``onnxruntime.InferenceSession`` (its
  ``get_inputs()``), a :class:`~saraikit.inspect.ModelInfo`, or a path to a
  ``.onnx`` file (read with ``onnx`` without creating a session).
- Dynamic dims (symbolic names or unnamed) are filled from ``dims``, looked up
  by symbolic name (``{"batch_size": 1, "phonemes": 50}``); an unnamed dynamic
  dim is looked up as ``"<input>:<axis>"`` (e.g. ``"x:0"``). Any dynamic dim
  left unfilled is a ``ConfigError`` that lists the missing names per input.
  Unused keys in ``dims`` are allowed, so one dict can serve many models.
- Values: floats (float16/float32/float64) from a standard normal; integers
  uniform in ``[0, int_high)`` (default 10, small enough to be a valid token,
  phoneme or class id for most models); bools uniform. Each input gets its own
  generator seeded from ``(seed, crc32(name))``, so an array depends only on
  the seed, its name, dtype and shape — overriding one input does not change
  the others.
- Inputs whose values carry meaning (Piper's ``input_lengths`` must equal the
  phoneme count, its ``scales`` are noise/length/noise-w) are given through
  ``values``: arrays cast to the input's dtype and checked against its rank and
  static dims.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from saraikit.core.errors import ConfigError, ModelError
from saraikit.models.inspect import inspect_onnx

INPUT_KIND = "synthetic"
"""The label to store with every result measured on these inputs."""

DEFAULT_INT_HIGH = 10

ORT_TYPE_TO_DTYPE = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


@dataclass
class InputSpec:
    """One model input: static sizes are ints, dynamic dims are their symbolic
    name or ``"?"`` when unnamed. ``dtype`` is a numpy dtype name."""

    name: str
    shape: list
    dtype: str

    @property
    def dynamic_dims(self) -> list[str]:
        """The lookup keys of the dynamic dims (symbolic name or ``"<name>:<axis>"``)."""
        return [_dim_key(self.name, axis, dim) for axis, dim in enumerate(self.shape) if not _is_static(dim)]


def input_specs(source) -> list[InputSpec]:
    """The input specs of a session, a ModelInfo or an ``.onnx`` path."""
    if hasattr(source, "get_inputs"):
        return [_spec_from_node_arg(arg) for arg in source.get_inputs()]
    details = getattr(source, "details", None)
    if details is None:
        details = inspect_onnx(Path(source)).details
    if "inputs" not in details:
        raise ModelError(f"{getattr(source, 'path', source)}: not an ONNX model, no input spec")
    return [InputSpec(s["name"], list(s["shape"] or []), s["dtype"]) for s in details["inputs"]]


def describe_inputs(source) -> pd.DataFrame:
    """The spec table: name, shape, dtype and the dynamic dim names per input."""
    rows = [
        {"name": s.name, "shape": s.shape, "dtype": s.dtype, "dynamic_dims": s.dynamic_dims}
        for s in input_specs(source)
    ]
    return pd.DataFrame(rows, columns=["name", "shape", "dtype", "dynamic_dims"])


def synthetic_inputs(
    session_or_path,
    dims: dict[str, int] | None = None,
    seed: int = 0,
    values: dict[str, np.ndarray] | None = None,
    int_high: int = DEFAULT_INT_HIGH,
) -> dict[str, np.ndarray]:
    """SYNTHETIC feeds for every input of a model: ``{name: array}``.

    ``dims`` fills dynamic dims by symbolic name; ``values`` gives fixed
    arrays for inputs whose values matter. Label results with ``INPUT_KIND``."""
    specs = input_specs(session_or_path)
    values = values or {}
    unknown = sorted(set(values) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"values given for unknown inputs {unknown}; inputs are {[s.name for s in specs]}")
    shapes = resolve_shapes([s for s in specs if s.name not in values], dims or {})
    feeds = {}
    for spec in specs:
        if spec.name in values:
            feeds[spec.name] = _given_array(spec, values[spec.name])
        else:
            feeds[spec.name] = _random_array(spec, shapes[spec.name], seed, int_high)
    return feeds


def resolve_shapes(specs: list[InputSpec], dims: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """Concrete shapes per input, or a ConfigError listing missing dims per input."""
    shapes, missing = {}, {}
    for spec in specs:
        shape = []
        for axis, dim in enumerate(spec.shape):
            key = _dim_key(spec.name, axis, dim)
            size = dim if _is_static(dim) else dims.get(key)
            if size is None:
                missing.setdefault(spec.name, []).append(key)
            elif not _is_static(size):
                raise ConfigError(f"dims[{key!r}] must be a non-negative int, got {size!r}")
            shape.append(size)
        shapes[spec.name] = tuple(int(size) for size in shape if size is not None)
    if missing:
        listing = "; ".join(f"{name}: {keys}" for name, keys in missing.items())
        raise ConfigError(f"no size given for dynamic dims ({listing}); pass them in dims={{name: size}}")
    return shapes


def _spec_from_node_arg(arg) -> InputSpec:
    shape = ["?" if d is None else d for d in (arg.shape or [])]
    return InputSpec(arg.name, shape, ORT_TYPE_TO_DTYPE.get(arg.type, arg.type))


def _dim_key(input_name: str, axis: int, dim) -> str:
    if isinstance(dim, str) and dim not in ("", "?"):
        return dim
    return f"{input_name}:{axis}"


def _is_static(dim) -> bool:
    return isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim >= 0


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def _random_array(spec: InputSpec, shape: tuple[int, ...], seed: int, int_high: int) -> np.ndarray:
    rng = _rng(seed, spec.name)
    dtype = _numpy_dtype(spec)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, int_high, shape).astype(dtype)
    raise ConfigError(f"input {spec.name!r} has dtype {spec.dtype}: pass its array in values=")


def _given_array(spec: InputSpec, value) -> np.ndarray:
    array = np.asarray(value, dtype=_numpy_dtype(spec))
    static = [(axis, dim) for axis, dim in enumerate(spec.shape) if _is_static(dim)]
    if array.ndim != len(spec.shape) or any(array.shape[axis] != dim for axis, dim in static):
        raise ConfigError(
            f"values[{spec.name!r}] has shape {list(array.shape)}, the input wants {spec.shape}"
        )
    return array


def _numpy_dtype(spec: InputSpec) -> np.dtype:
    try:
        return np.dtype(spec.dtype)
    except TypeError as exc:
        raise ConfigError(f"input {spec.name!r} has dtype {spec.dtype} that numpy cannot make") from exc
