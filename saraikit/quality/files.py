"""Files the quality runs write: 16-bit WAV clips and CSV tables.

Each is written to a temporary file in the destination folder and renamed, so
an interrupted run never leaves a half-written clip or table behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from saraikit.core.io import atomic_path, atomic_write

__all__ = ["save_frame", "write_wav"]


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """``samples`` as a 16-bit PCM WAV at ``path`` (folders created, written atomically)."""
    with atomic_path(path) as temporary:
        sf.write(temporary, samples, sample_rate, format="WAV", subtype="PCM_16")


def save_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV through a temporary file in the same folder."""
    return atomic_write(path, lambda stream: frame.to_csv(stream, index=False))
