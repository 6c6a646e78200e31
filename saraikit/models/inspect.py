"""What a model is, without running it: ONNX files, ONNX Runtime ``.ort`` files, GGUF files, CTranslate2 folders.

``inspect_model(path)`` returns a :class:`ModelInfo` whose ``details`` hold the
format-specific facts, read by one module per format (``onnx_file``,
``ort_file``, ``gguf_file``, ``ct2_file``). ``inventory.inventory_frame`` flattens many of
them into one table, and ``compat.check_compatibility`` compares what pipeline
stages expect and produce.

Decisions
---------
- Nothing here runs a model; only an ``.ort`` file is opened in an
  onnxruntime session (which maps its weights), because no other reader
  reports its inputs and outputs (see ``ort_file``). ``details`` holds only plain
  JSON-serialisable values (str, int, float, bool, None, lists, dicts) so it
  can be stored as JSON next to benchmark results.
- The format is chosen from the path: a folder is CTranslate2, otherwise the
  suffix (``.onnx``, ``.ort``, ``.gguf``) decides. Bad input is a ``ModelError`` naming
  the path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from saraikit.core.errors import ModelError
from saraikit.models.ct2_file import describe_ctranslate2
from saraikit.models.gguf_file import describe_gguf
from saraikit.models.onnx_file import describe_onnx
from saraikit.models.ort_file import describe_ort


@dataclass
class ModelInfo:
    """A model described without running it.

    ``format`` is ``"onnx"``, ``"ort"``, ``"gguf"`` or ``"ctranslate2"``; ``bytes`` is the
    size on disk (the folder total for CTranslate2, including external data
    files for ONNX); ``details`` holds the format-specific facts.
    """

    path: str
    format: str
    bytes: int
    details: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    return path


def inspect_model(path: str | Path) -> ModelInfo:
    """Describe the model at ``path``: a ``.onnx`` file, an ``.ort`` file, a
    ``.gguf`` file or a CTranslate2 folder. Raises ``ModelError`` naming the path on bad input."""
    path = _existing(path)
    if path.is_dir():
        return inspect_ctranslate2(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return inspect_onnx(path)
    if suffix == ".ort":
        return inspect_ort(path)
    if suffix == ".gguf":
        return inspect_gguf(path)
    raise ModelError(
        f"{path}: unknown model format {suffix or '(no extension)'!r}; "
        "expected a .onnx file, an .ort file, a .gguf file or a CTranslate2 folder"
    )


def inspect_onnx(path: str | Path) -> ModelInfo:
    path = _existing(path)
    size, details = describe_onnx(path)
    return ModelInfo(str(path), "onnx", size, details)


def inspect_ort(path: str | Path) -> ModelInfo:
    path = _existing(path)
    size, details = describe_ort(path)
    return ModelInfo(str(path), "ort", size, details)


def inspect_gguf(path: str | Path) -> ModelInfo:
    path = _existing(path)
    size, details = describe_gguf(path)
    return ModelInfo(str(path), "gguf", size, details)


def inspect_ctranslate2(folder: str | Path) -> ModelInfo:
    folder = _existing(folder)
    size, details = describe_ctranslate2(folder)
    return ModelInfo(str(folder), "ctranslate2", size, details)
