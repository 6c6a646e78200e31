"""Files the quality runs write: 16-bit WAV clips and CSV tables.

Each is written to a temporary file in the destination folder and renamed, so
an interrupted run never leaves a half-written clip or table behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

__all__ = ["save_frame", "write_wav"]


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """``samples`` as a 16-bit PCM WAV at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        sf.write(temporary, samples, sample_rate, format="WAV", subtype="PCM_16")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            frame.to_csv(stream, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
