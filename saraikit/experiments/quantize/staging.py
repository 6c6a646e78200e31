"""Writing a quantized model safely (:class:`Staging`) and capturing ORT's log chatter (:func:`captured_logs`).

Decisions
---------
- ORT writes into a fresh hidden folder next to the output, under the
  output's final name (so an external-data file ORT may write,
  ``<name>.data``, keeps a valid relative location). After the checks pass,
  data files and then the model are moved with ``os.replace``; on any
  failure the folder is deleted, and an older file at the output path is
  left alone.
- ORT's quantizer logs on the root logger (hundreds of "Inference failed or
  unsupported type" lines on Piper); those records are captured during the
  call and kept, counted per message shape (:func:`summarize_logs`); the
  calibrators' ``print`` chatter on stdout is dropped.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from saraikit.core.errors import ModelError


class Staging:
    """A hidden folder next to ``out_path`` to write into; ``commit`` moves the result in place.

    ``path`` has the final file name, so external-data references written
    relative to it stay valid after the move. Leaving the block without
    ``commit`` deletes everything that was written."""

    def __init__(self, out_path: Path):
        self.out_path = out_path

    def __enter__(self) -> "Staging":
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=f".{self.out_path.name}.", dir=self.out_path.parent))
        self.path = self.folder / self.out_path.name
        return self

    def commit(self) -> int:
        """Move the written files next to ``out_path`` (the model last); return their total bytes."""
        if not self.path.is_file():
            raise ModelError(f"nothing was written to {self.path}")
        files = [f for f in self.folder.iterdir() if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        for file in sorted(files, key=lambda f: f == self.path):
            os.replace(file, self.out_path.parent / file.name)
        return size

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _ListHandler(logging.Handler):
    def __init__(self, records: list):
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs():
    """Collect root-logger warnings (ORT's quantizer logs there) instead of printing them.

    ORT's calibrators also ``print`` progress chatter; stdout is swallowed too."""
    root = logging.getLogger()
    records: list[logging.LogRecord] = []
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [_ListHandler(records)]
    root.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield records
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def summarize_logs(records: list[logging.LogRecord], keep: int = 10) -> list[str]:
    """Distinct message shapes with counts; quoted tensor names are blanked to group them."""
    shapes = Counter(re.sub(r"'[^']*'", "'…'", r.getMessage().strip().splitlines()[0])[:200] for r in records)
    return [f"{message} (x{n})" for message, n in shapes.most_common(keep)]
