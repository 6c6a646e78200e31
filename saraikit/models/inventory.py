"""The inventory: every model in ``models/``, inspected, as tables for the 00 notebook.

This module only arranges what :mod:`saraikit.models.catalog` (what is there)
and :mod:`saraikit.models.inspect` (what it is) report. A model that cannot be
inspected (a corrupt file a user dropped in) becomes a row with its error, not
an exception that stops the notebook. ``inventory_frame`` flattens the
format-specific details of many models into one table with common columns.
ONNX Runtime ``.ort`` files report the same graph facts as ONNX files (see
``ort_file``), so they share the ONNX rows and tables (:data:`GRAPH_FORMATS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from saraikit.core import paths
from saraikit.core.errors import SaraikitError
from saraikit.models import catalog, inspect
from saraikit.models.compat import check_compatibility
from saraikit.models.gguf_file import GGUF_UNQUANTIZED

GRAPH_FORMATS = ("onnx", "ort")  # formats whose details hold inputs, outputs, opsets and an op histogram
INVENTORY_COLUMNS = [
    "name", "format", "bytes", "parameters", "quantized", "quant_type", "arch",
    "producer", "n_inputs", "n_outputs", "opset", "hidden_size", "layers", "ctx",
    "vocab_size", "sample_rate", "language", "path",
]  # fmt: skip


@dataclass
class Inspected:
    entry: catalog.ManifestEntry
    info: inspect.ModelInfo | None
    error: str | None = None


def inspect_all(models_dir: Path | None = None) -> dict[str, Inspected]:
    root = models_dir or paths.models_dir()
    inspected = {}
    for entry in catalog.list_models(root):
        try:
            inspected[entry.name] = Inspected(entry, inspect.inspect_model(root / entry.path))
        except SaraikitError as exc:
            inspected[entry.name] = Inspected(entry, None, str(exc))
    return inspected


def inventory_frame(infos: Iterable[inspect.ModelInfo] | dict[str, inspect.ModelInfo]) -> pd.DataFrame:
    """One row per model with the common fields flattened. A dict's keys
    become the ``name`` column; otherwise the file or folder name does."""
    items = infos.items() if isinstance(infos, dict) else ((i.name, i) for i in infos)
    rows = [{"name": name, **_inventory_row(info)} for name, info in items]
    return pd.DataFrame(rows, columns=INVENTORY_COLUMNS)


def _inventory_row(info: inspect.ModelInfo) -> dict:
    d = info.details
    row = {"format": info.format, "bytes": info.bytes, "path": info.path, "parameters": d.get("parameters")}
    if info.format in GRAPH_FORMATS:
        sidecar = d.get("sidecar") or {}
        row.update(
            quantized=d["quantized"],
            quant_type=d["weight_dtype"],
            producer=d["producer"],
            n_inputs=len(d["inputs"]),
            n_outputs=len(d["outputs"]),
            opset=d["opsets"].get("ai.onnx"),
            sample_rate=sidecar.get("sample_rate"),
            language=sidecar.get("language"),
        )
    elif info.format == "gguf":
        unquantized = d["quant_type"] in GGUF_UNQUANTIZED or d["dominant_tensor_type"] in GGUF_UNQUANTIZED
        row.update(
            quantized=not unquantized,
            quant_type=d["quant_type"] or d["dominant_tensor_type"],
            arch=d["architecture"],
            hidden_size=d["embedding_length"],
            layers=d["block_count"],
            ctx=d["context_length"],
            vocab_size=d["vocab_size"],
        )
    elif info.format == "ctranslate2":
        row.update(
            quantized=d["weight_dtype"] in ("int8", "int16"),
            quant_type=d["weight_dtype"],
            arch=d["model_type"],
            hidden_size=d["d_model"],
            layers=d["encoder_layers"] or d["decoder_layers"],
            ctx=d["max_target_positions"],
            vocab_size=d["vocabulary_size"],
            sample_rate=d.get("sample_rate"),
            language=d.get("language"),
        )
    return row


def inventory_table(inspected: dict[str, Inspected]) -> pd.DataFrame:
    """One row per model: manifest fields and the common inspected facts."""
    rows = []
    for name, item in inspected.items():
        e = item.entry
        base = {"name": name, "role": e.role, "format": e.format, "MB": round(e.bytes / 1e6, 1),
                "sha256": e.sha256[:12], "source": short_source(e), "version": e.package_version,
                "license": e.license}
        if item.info is None:
            rows.append({**base, "error": item.error})
            continue
        facts = inventory_frame([item.info]).iloc[0].to_dict()
        facts = {k: v for k, v in facts.items() if k not in ("name", "format", "bytes", "path")}
        rows.append({**base, **facts, "error": ""})
    return _integers_as_int(pd.DataFrame(rows))


def short_source(entry: catalog.ManifestEntry) -> str:
    """The source package, with split models shown as 'first part (+N parts)'."""
    if not entry.package:
        return entry.source
    packages = entry.package.split(", ")
    return packages[0] if len(packages) == 1 else f"{packages[0]} (+{len(packages) - 1} parts)"


def _integers_as_int(frame: pd.DataFrame) -> pd.DataFrame:
    """Float columns that only hold whole numbers (NaN where a fact does not apply) as nullable ints."""
    for column in frame.select_dtypes("float").columns:
        values = frame[column].dropna()
        if len(values) and (values == values.round()).all() and column != "MB":
            frame[column] = frame[column].astype("Int64")
    return frame


def io_table(inspected: dict[str, Inspected]) -> pd.DataFrame:
    """ONNX (and .ort) inputs and outputs: name, shape (dynamic dims by name), dtype."""
    rows = []
    for name, item in inspected.items():
        if item.info is None or item.info.format not in GRAPH_FORMATS:
            continue
        for kind in ("inputs", "outputs"):
            for tensor in item.info.details[kind]:
                rows.append({"model": name, "kind": kind[:-1], "tensor": tensor["name"],
                             "shape": str(tensor["shape"]), "dtype": tensor["dtype"],
                             "dynamic dims": ", ".join(str(d) for d in tensor["shape"] if not isinstance(d, int))})
    return pd.DataFrame(rows)


def onnx_facts_table(inspected: dict[str, Inspected]) -> pd.DataFrame:
    """Graph facts of the ONNX and .ort models, with whether INT8 quantization (notebook 01) applies."""
    rows = []
    for name, item in inspected.items():
        if item.info is None or item.info.format not in GRAPH_FORMATS:
            continue
        d = item.info.details
        evidence = {k: v for k, v in d["quantization_evidence"].items()
                    if v and k not in ("initializer_bytes",)}
        rows.append({"model": name, "opsets": d["opsets"], "ir_version": d["ir_version"],
                     "producer": d["producer"], "nodes": d["n_nodes"], "parameters": d["parameters"],
                     "weight_dtype": d["weight_dtype"], "quantized": d["quantized"],
                     "quantization evidence": evidence or "none",
                     "quantization": d.get("quantization_note", "applies (ONNX graph)")})
    return pd.DataFrame(rows)


def op_histogram_table(inspected: dict[str, Inspected], top: int = 12) -> pd.DataFrame:
    """Tidy (model, op, count) rows with each model's ``top`` most frequent ops."""
    rows = []
    for name, item in inspected.items():
        if item.info is None or item.info.format not in GRAPH_FORMATS:
            continue
        histogram = sorted(item.info.details["op_histogram"].items(), key=lambda kv: -kv[1])
        rows += [{"model": name, "op": op, "count": count} for op, count in histogram[:top]]
    return pd.DataFrame(rows)


GGUF_FIELDS = ("architecture", "name", "quant_type", "dominant_tensor_type", "parameters", "context_length",
               "embedding_length", "block_count", "head_count", "head_count_kv", "vocab_size",
               "has_chat_template", "tensor_types")
CT2_FIELDS = ("spec", "model_type", "weight_dtype", "parameters", "d_model", "encoder_layers", "decoder_layers",
              "n_mels", "vocabulary_size", "multilingual", "language", "sample_rate")


def _details_table(inspected, fmt: str, fields) -> pd.DataFrame:
    rows = [{"model": name, **{f: item.info.details.get(f) for f in fields}}
            for name, item in inspected.items() if item.info is not None and item.info.format == fmt]
    return pd.DataFrame(rows)


def gguf_table(inspected: dict[str, Inspected]) -> pd.DataFrame:
    return _details_table(inspected, "gguf", GGUF_FIELDS)


def ct2_table(inspected: dict[str, Inspected]) -> pd.DataFrame:
    return _details_table(inspected, "ctranslate2", CT2_FIELDS)


def compatibility_table(stack: dict, inspected: dict[str, Inspected]) -> pd.DataFrame:
    """Stage-to-stage checks of a stack config; mismatches are rows with ok=False."""
    infos = {name: item.info for name, item in inspected.items() if item.info is not None}
    return check_compatibility(stack, infos)
