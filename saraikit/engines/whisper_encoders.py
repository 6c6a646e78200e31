"""Which ONNX Whisper encoder file a stage runs: the FP32 export, an INT8 variant made from it, or a file you name.

Decisions
---------
- ``encoder`` is ``"fp32"``, ``"int8"`` (an alias of :data:`DEFAULT_INT8`),
  the name of a *dynamic* recipe of
  :func:`saraikit.engines.quant_variants.named_variants` (``dynamic-s8``,
  ``dynamic-u8``, ...), or a path to an ``.onnx`` file (a value ending in
  ``.onnx`` or holding a path separator). Anything else is a ConfigError
  listing the valid names, raised when the stage is built, before any load.
- ``"fp32"`` is :func:`saraikit.engines.whisper_export.export_beside`:
  ``<models>/<model>-encoder-onnx/<model>-encoder.onnx``, the file
  ``default_export`` writes.
- A recipe's file is ``<model>-encoder.<recipe>.onnx`` in the same folder:
  notebook 01's naming (``<stem>.<variant>.onnx``), so
  :func:`saraikit.quality.transcribe.int8_encoders` finds it too. It is made
  from the FP32 export with ORT's ``quantize_dynamic`` and the recipe's
  parameters (:func:`saraikit.engines.quant_variants.ort_arguments`, the
  same mapping notebook 01 uses), when missing or older than the FP32 file,
  written under a temporary name, checked with ``onnx.checker`` and renamed
  (``whisper_export.write_shared``): a killed run leaves no half file and
  two processes making it at once both end with a whole one. Unlike
  notebook 01 it skips ORT's ``quant_pre_process``: pre-processing is an
  optimisation, and the ONNX graph of the export is already plain MatMuls,
  so the two files can differ in fused ops, not in what is quantized.
- Static recipes calibrate activation ranges on real feeds, which is
  notebook 01's job: a static name is a ConfigError that says to pass the
  path of notebook 01's file instead.
- A path must exist (ModelError) and be a Whisper encoder of *this* model:
  input ``mel`` [batch, n_mels, frames] and output ``encoder_output``
  [batch, time, d_model]. :func:`check_encoder_file` reads the declared
  inputs and outputs with ``onnx`` (no session), so a wrong file fails when
  the stage is built, naming the file.
- :data:`DEFAULT_INT8` is ``dynamic-s8`` (int8 weights, uint8 activations:
  ORT's default dynamic recipe). On the reference machine (avx512_vnni,
  busy) whisper-base's encoder at a 10 s window took about 200 ms against
  230 ms for ``dynamic-u8`` and 250 ms FP32 (8 runs each, interleaved, one
  process: a hint, not a measurement); notebook 01 measures every recipe
  properly.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from saraikit.core.errors import ConfigError, ModelError
from saraikit.engines.quant_graph import check_model, excluded_nodes, load_graph
from saraikit.engines.quant_variants import Variant, named_variants, ort_arguments
from saraikit.engines.whisper_export import (
    INPUT_NAME,
    OUTPUT_NAME,
    encoder_spec,
    export_beside,
    export_path,
    write_shared,
)

FP32 = "fp32"
INT8_ALIAS = "int8"
DEFAULT_INT8 = "dynamic-s8"


def dynamic_recipes() -> dict[str, Variant]:
    """The recipes a stage can make itself (dynamic ones: no calibration data needed)."""
    return {name: v for name, v in named_variants().items() if v.method == "dynamic"}


def is_path(encoder: str) -> bool:
    return encoder.endswith(".onnx") or "/" in encoder or "\\" in encoder


def check_encoder_choice(encoder, where: str) -> str:
    """``encoder`` when it is a valid choice (ConfigError otherwise); a path is checked by :func:`check_encoder_file`."""
    if not isinstance(encoder, (str, Path)):
        raise ConfigError(f"{where}.encoder: expected 'fp32', 'int8', a recipe name or a path, got {encoder!r}")
    encoder = str(encoder)
    if encoder in (FP32, INT8_ALIAS) or encoder in dynamic_recipes() or is_path(encoder):
        return encoder
    static = sorted(name for name, v in named_variants().items() if v.method == "static")
    hint = (f"; {encoder!r} is a static recipe, which needs calibration data: make it in notebook 01 and pass "
            "the path of its file" if encoder in static else "")
    raise ConfigError(f"{where}.encoder: unknown encoder {encoder!r}; valid: 'fp32', 'int8' (= {DEFAULT_INT8}), "
                      f"{', '.join(repr(n) for n in dynamic_recipes())} or a path to an .onnx file{hint}")


def check_encoder_file(path: str | Path, ct2_dir: str | Path) -> Path:
    """``path`` when it is an ONNX Whisper encoder for the model in ``ct2_dir`` (ModelError naming the file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such encoder file")
    spec = encoder_spec(ct2_dir)
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as error:  # noqa: BLE001 - protobuf raises several types
        raise ModelError(f"{path}: not a readable ONNX model ({type(error).__name__})") from error
    inputs = {i.name: _dims(i) for i in graph.input}
    outputs = {o.name: _dims(o) for o in graph.output}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ModelError(f"{path}: not a Whisper encoder: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
                         f"has inputs {sorted(inputs)} and outputs {sorted(outputs)}")
    mel, out = inputs[INPUT_NAME], outputs[OUTPUT_NAME]
    if len(mel) != 3 or mel[1] not in (spec.n_mels, None) or len(out) != 3 or out[2] not in (spec.d_model, None):
        raise ModelError(f"{path}: not an encoder of {Path(ct2_dir).name}: {INPUT_NAME} {mel}, {OUTPUT_NAME} {out}; "
                         f"expected [batch, {spec.n_mels}, frames] and [batch, time, {spec.d_model}]")
    if isinstance(mel[2], int):
        raise ModelError(f"{path}: input {INPUT_NAME!r} has a fixed {mel[2]} frames; a trimmed window needs a "
                         "dynamic frame count (re-export with saraikit.engines.whisper_export)")
    return path


def _dims(value_info) -> list:
    """Declared dims: ints for fixed sizes, None for dynamic ones."""
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def recipe_path(ct2_dir: str | Path, recipe: str) -> Path:
    """``<models>/<model>-encoder-onnx/<model>-encoder.<recipe>.onnx``."""
    fp32 = export_path(ct2_dir)
    return fp32.with_name(f"{fp32.stem}.{recipe}.onnx")


def encoder_file(encoder: str, ct2_dir: str | Path) -> Path:
    """The encoder file for ``encoder`` (see the module docstring), exported / quantized when missing or stale."""
    if is_path(encoder):
        return check_encoder_file(encoder, ct2_dir)
    fp32 = export_beside(ct2_dir)
    if encoder == FP32:
        return fp32
    recipe = dynamic_recipes()[DEFAULT_INT8 if encoder == INT8_ALIAS else encoder]
    out = recipe_path(ct2_dir, recipe.name)
    if not out.is_file() or out.stat().st_mtime < fp32.stat().st_mtime:
        quantize_encoder(fp32, recipe, out)
    return out


def quantize_encoder(fp32: Path, recipe: Variant, out: Path) -> Path:
    """``fp32`` quantized by the dynamic ``recipe`` into ``out`` (atomically, world-readable)."""
    from onnxruntime.quantization import quantize_dynamic

    excluded = excluded_nodes(load_graph(fp32), recipe)

    def write(temp: Path) -> None:
        quantize_dynamic(**ort_arguments(recipe, excluded, fp32, temp))
        check_model(temp)

    write_shared(out, write)
    return out
