"""Model files an engine loads: present, and complete, before the engine sees them.

A missing file or folder is a :class:`ModelError` naming the path; checking
first gives that message instead of the engine's own (often a bare crash or
an unrelated-sounding parse error).
"""

from __future__ import annotations

from pathlib import Path

from saraikit.core.errors import ModelError


def existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{what} not found: {path}")
    if not path.is_file():
        raise ModelError(f"{what} is not a file: {path}")
    return path


def existing_dir(path: str | Path, what: str, required: tuple[str, ...]) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{what} folder not found: {path}")
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        raise ModelError(f"{what} folder {path} lacks {', '.join(missing)}")
    return path
