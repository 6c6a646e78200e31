"""Do a worker's model files match the head's? Refuse a worker whose files differ; ship the missing ones.

A figure is stored with the sha256 of the model that made it, and the head
records what a worker measured under the head's sha256; so before a job runs
on a worker, the worker's copy of every model the job needs is hashed *on the
worker* and compared with the head's manifest:

- same sha256: the worker may run the job;
- a different sha256: the worker is refused (:class:`ClusterError` naming the
  worker, the model and both hashes); a stale or corrupt model on a device
  must be fixed there (reprovision, or delete it to have the head ship it);
- missing: with ``ship=True`` (the default) the head sends every file of the
  model in chunks (:data:`CHUNK_BYTES`), with the sha256 it computed of each
  file; the worker writes a hidden temporary file, checks its sha256, renames
  it into place and adds the head's manifest entry to its own manifest. A
  file that arrives corrupt is deleted and the model refused: a device that
  cannot reach a package registry still gets exactly the head's models.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from saraikit.core import paths
from saraikit.core.errors import ClusterError
from saraikit.models import catalog

CHUNK_BYTES = 8 * 2**20


@dataclass
class ModelCheck:
    """One worker's models against the head's: names that match, differ (name -> worker sha256) or are missing."""

    address: str
    matching: list[str] = field(default_factory=list)
    differing: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _folder(entry: catalog.ManifestEntry, root: Path) -> str:
    """The model's folder relative to ``models/`` (a CTranslate2 folder, or the file's folder)."""
    return entry.path if (root / entry.path).is_dir() else str(Path(entry.path).parent)


def head_models(names: list[str] | None = None) -> dict[str, dict]:
    """The head's manifest entries (as dicts) for ``names`` (all when None); unknown names are an error."""
    manifest = catalog.read_manifest()
    wanted = names if names is not None else sorted(manifest)
    missing = [n for n in wanted if n not in manifest]
    if missing:
        raise ClusterError(f"model(s) {missing} are not in the head's manifest ({paths.models_dir()}); "
                           f"provision them there first")
    return {n: manifest[n].to_dict() for n in wanted}


def worker_sha256s(entries: dict[str, dict]) -> dict[str, str | None]:
    """Runs on a worker: the sha256 of its copy of each model's main file (hashed now), None when absent."""
    root = paths.models_dir()
    found = {}
    for name, entry in entries.items():
        main = root / entry["path"]
        main = main / "model.bin" if entry["format"] == "ctranslate2" else main
        found[name] = catalog.sha256_file(main) if main.is_file() else None
    return found


def check_worker(client, address: str, entries: dict[str, dict]) -> ModelCheck:
    hashes = client.submit(worker_sha256s, entries, workers=[address], pure=False, allow_other_workers=False).result()
    check = ModelCheck(address)
    for name, entry in entries.items():
        theirs = hashes.get(name)
        if theirs is None:
            check.missing.append(name)
        elif theirs == entry["sha256"]:
            check.matching.append(name)
        else:
            check.differing[name] = theirs
    return check


def receive_chunk(relpath: str, offset: int, data: bytes) -> int:
    """Runs on a worker: write ``data`` at ``offset`` of the hidden temporary file of ``relpath``."""
    part = _part_path(paths.models_dir() / relpath)
    part.parent.mkdir(parents=True, exist_ok=True)
    with open(part, "r+b" if offset else "wb") as fh:
        fh.seek(offset)
        fh.write(data)
    return offset + len(data)


def finish_file(relpath: str, sha256: str) -> str:
    """Runs on a worker: check the temporary file's sha256, then rename it into place (or delete it)."""
    dest = paths.models_dir() / relpath
    part = _part_path(dest)
    got = catalog.sha256_file(part)
    if got != sha256:
        part.unlink(missing_ok=True)
        raise ClusterError(f"{relpath} arrived with sha256 {got[:16]}..., the head sent {sha256[:16]}...: "
                           "deleted, model refused")
    with open(part, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(part, dest)
    return got


def add_manifest_entry(entry: dict) -> str:
    """Runs on a worker: add the head's manifest entry of a shipped model to the worker's manifest."""
    root = paths.models_dir()
    entries = catalog.read_manifest(root)
    main = root / entry["path"]
    weights = main / "model.bin" if entry["format"] == "ctranslate2" else main
    entries[entry["name"]] = catalog.ManifestEntry(**{**entry, "mtime_ns": weights.stat().st_mtime_ns})
    return str(catalog.write_manifest(entries, root))


def _part_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.part")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def ship_model(client, address: str, entry: dict) -> int:
    """Send every file of one model to the worker at ``address``; returns the bytes sent."""
    root = paths.models_dir()
    folder = _folder(catalog.ManifestEntry(**entry), root)
    sent = 0
    for name in sorted(entry["files"]) or [Path(entry["path"]).name]:
        source = root / folder / name
        relpath = str(Path(folder) / name)
        offset = 0
        with open(source, "rb") as fh:
            block = fh.read(CHUNK_BYTES)
            while True:  # an empty file still sends one (empty) chunk, so its temporary file exists
                offset = client.submit(receive_chunk, relpath, offset, block, workers=[address], pure=False,
                                       allow_other_workers=False).result()
                sent += len(block)
                block = fh.read(CHUNK_BYTES)
                if not block:
                    break
        client.submit(finish_file, relpath, _sha256(source), workers=[address], pure=False,
                      allow_other_workers=False).result()
    client.submit(add_manifest_entry, entry, workers=[address], pure=False, allow_other_workers=False).result()
    return sent


def ensure_models(client, addresses: list[str], names: list[str] | None = None, ship: bool = True) -> list[ModelCheck]:
    """Check (and complete) the models of each worker; raise :class:`ClusterError` for one that differs."""
    entries = head_models(names)
    checks = []
    for address in addresses:
        check = check_worker(client, address, entries)
        if check.differing:
            detail = "; ".join(f"{n}: worker {sha[:16]}..., head {entries[n]['sha256'][:16]}..."
                               for n, sha in sorted(check.differing.items()))
            raise ClusterError(f"worker at {address} refused: its model files differ from the head's by sha256 "
                               f"({detail}); reprovision them there, or delete them to have the head ship its own")
        if check.missing and not ship:
            raise ClusterError(f"worker at {address} lacks model(s) {check.missing} (ship=False)")
        for name in check.missing:
            ship_model(client, address, entries[name])
        checks.append(check)
    return checks
