"""Writing files so that a reader never sees half of one.

:func:`atomic_write` is the one way saraikit writes a file: the content goes
to a temporary file in the destination's own folder (so the final rename stays
on one filesystem and is atomic), is flushed and fsynced, then renamed over
the destination with ``os.replace``. On any failure the temporary file is
removed and an earlier file at the destination is left as it was. The file
gets the permissions a plain ``open(path, "w")`` would give it (0666 less the
umask), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import yaml


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path``; renamed over it when the block ends without error.

    For writers that need a file name rather than a handle (matplotlib, soundfile, nbconvert).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())
    try:
        yield Path(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable, binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        with open(temporary, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
            write(handle)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data), binary=True)


def atomic_write_json(path: str | Path, data, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, default=str))


def atomic_write_yaml(path: str | Path, data, sort_keys: bool = False) -> Path:
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=sort_keys, allow_unicode=True))


def atomic_copy(source: str | Path, dest: str | Path) -> Path:
    return atomic_write_bytes(dest, Path(source).read_bytes())
