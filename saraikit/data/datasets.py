"""Manifests of real speech clips with reference transcripts.

Built-in sets come from Debian packages (read in place, never copied):

- ``asterisk_es``: Spanish (es-MX) telephony prompts, 8 kHz, from
  ``asterisk-core-sounds-es-wav`` (audio) and ``asterisk-core-sounds-es``
  (transcripts in ``core-sounds-es.txt.gz``, lines ``key: text``).
- ``librivox_en`` and ``cards_en``: English read speech, 16 kHz, from
  ``pocketsphinx-testdata`` (lines ``<s> text </s> (fileid)``).

User manifests are CSV or JSONL files with ``path, reference, language`` and
an optional ``id``; relative paths resolve against the manifest's folder.

Decisions:

- Nothing is dropped silently: every clip that is left out becomes a
  :class:`Dropped` with a reason from a fixed list (see ``*`` constants
  below) plus a free-text detail. Audio is checked before the transcript, so
  a silent file with no transcript is reported as ``silent``.
- Transcript keys are matched to WAV files exactly (case-sensitive) by listing
  the folder, so counts are the same on case-insensitive file systems. The
  asterisk transcripts say ``digits/1f``/``digits/1m`` while the files are
  ``1F.wav``/``1M.wav``: we report both sides instead of guessing.
- A key listed twice with different texts is dropped as ``conflicting
  transcripts`` (asterisk lists ``digits/0`` as both "cero" and "diez").
- A transcript that is only a bracketed tag, ``[tono simple]`` or
  ``(beep)``, is non-speech and dropped. Brackets inside speech are removed
  and the words kept: the only case, ``Sus saludos [temporales] estan
  actualmente en uso``, speaks at 12.7 characters/s with the word (the
  median of prompts over 20 characters is 11.4) and 9.4 without it, so
  "temporales" is spoken.
- References are otherwise kept as written (case, accents, punctuation,
  digits such as "marque 1"): normalising text for WER is the job of the
  quality code, not of the manifest.
- Language codes are ISO 639 codes of 2 or 3 letters (``es``, ``en``),
  lower-cased; region variants such as ``es-MX`` are rejected.
- Text files are read as UTF-8 and fall back to latin-1; the encoding used is
  recorded in ``Dataset.notes``.
- ``filter(limit=n)`` takes evenly spaced clips rather than the first n, so a
  small subset spans the whole set (the first 20 asterisk clips are all
  ``agent-*`` prompts).
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import soundfile as sf

from saraikit.data.audio import SILENCE_DBFS, peak_dbfs, read_audio
from saraikit.core.errors import DataError
from saraikit.core.io import atomic_write_text

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/es_MX_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-es/core-sounds-es.txt.gz")
SPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")

# Reasons a clip is dropped (the keys of Dataset.dropped_counts()).
MISSING_AUDIO = "missing audio"
UNREADABLE_AUDIO = "unreadable audio"
EMPTY_AUDIO = "empty audio"
SILENT = "silent"
NO_TRANSCRIPT = "no transcript"
CONFLICTING_TRANSCRIPTS = "conflicting transcripts"
NON_SPEECH_TAG = "non-speech tag"
EMPTY_REFERENCE = "empty reference"
MALFORMED_LINE = "malformed line"
MISSING_PATH = "missing path"
MISSING_LANGUAGE = "missing language"
UNKNOWN_LANGUAGE = "unknown language"
DUPLICATE_ID = "duplicate id"

MANIFEST_COLUMNS = ("id", "path", "reference", "language")
REQUIRED_COLUMNS = ("path", "reference", "language")


@dataclass
class Clip:
    id: str
    path: Path
    language: str
    duration_s: float
    sample_rate: int
    reference: str
    source: str


@dataclass
class Dropped:
    id: str
    path: Path | None
    reason: str
    detail: str = ""


@dataclass
class Dataset:
    name: str
    clips: list[Clip]
    dropped: list[Dropped]
    notes: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        columns = list(Clip.__dataclass_fields__)
        rows = [{**asdict(clip), "path": str(clip.path)} for clip in self.clips]
        return pd.DataFrame(rows, columns=columns)

    def dropped_counts(self) -> dict[str, int]:
        return dict(Counter(entry.reason for entry in self.dropped).most_common())

    def summary(self) -> str:
        minutes = sum(clip.duration_s for clip in self.clips) / 60
        languages = ", ".join(sorted({clip.language for clip in self.clips})) or "-"
        rates = ", ".join(str(rate) for rate in sorted({clip.sample_rate for clip in self.clips}))
        lines = [
            f"{self.name}: {len(self.clips)} clips, {minutes:.1f} min, "
            f"language {languages}, {rates or '-'} Hz; dropped {len(self.dropped)}"
        ]
        counts = self.dropped_counts().items()
        lines += [f"  dropped, {reason}: {count}" for reason, count in counts]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


class _Drop(Exception):
    """Raised by the checks below; the builders turn it into a Dropped entry."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# --- checks shared by every source -------------------------------------------


def _probe_audio(path: Path) -> tuple[float, int]:
    """Duration (s) and sample rate of a usable audio file; raises _Drop otherwise."""
    if not path.is_file():
        raise _Drop(MISSING_AUDIO)
    try:
        info = sf.info(path)
    except sf.SoundFileError as error:
        raise _Drop(UNREADABLE_AUDIO, str(error)) from None
    if info.frames == 0:
        raise _Drop(EMPTY_AUDIO)
    try:
        peak = peak_dbfs(read_audio(path))
    except DataError as error:
        raise _Drop(UNREADABLE_AUDIO, str(error)) from None
    if peak < SILENCE_DBFS:
        raise _Drop(SILENT, f"peak {peak:.1f} dBFS")
    return info.duration, info.samplerate


def _clean_reference(text: str) -> str:
    text = text.strip()
    if re.fullmatch(r"\[[^\]]*\]|\([^)]*\)", text):
        raise _Drop(NON_SPEECH_TAG, text)
    text = " ".join(re.sub(r"[\[\]()]", " ", text).split())
    if not text:
        raise _Drop(EMPTY_REFERENCE)
    return text


def _read_text(path: Path) -> tuple[str, str]:
    """The text of a (possibly gzipped) file and the encoding that decoded it."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _require(path: Path, package: str) -> None:
    if not path.exists():
        raise DataError(
            f"{path} not found: it comes from the Debian package {package} "
            f"(sudo apt-get install {package})"
        )


# --- built-in sets ------------------------------------------------------------


def _build_from_folder(
    name: str,
    folder: Path,
    transcripts: dict[str, list[str]],
    language: str,
    source: str,
    dropped: list[Dropped],
) -> Dataset:
    """Pair ``<folder>/<key>.wav`` files with ``transcripts[key]`` (texts per key)."""
    wavs = {p.relative_to(folder).with_suffix("").as_posix(): p for p in folder.rglob("*.wav")}
    clips = []
    for key in sorted(wavs.keys() | transcripts.keys()):
        path = wavs.get(key, folder / f"{key}.wav")
        try:
            # Not path.is_file(): on a case-insensitive disk "1f.wav" would find "1F.wav".
            if key not in wavs:
                raise _Drop(MISSING_AUDIO)
            duration_s, sample_rate = _probe_audio(path)
            texts = transcripts.get(key)
            if not texts:
                raise _Drop(NO_TRANSCRIPT)
            if len(set(texts)) > 1:
                raise _Drop(CONFLICTING_TRANSCRIPTS, " | ".join(texts))
            reference = _clean_reference(texts[0])
            clip = Clip(key, path, language, duration_s, sample_rate, reference, source)
            clips.append(clip)
        except _Drop as drop:
            dropped.append(Dropped(key, path, drop.reason, drop.detail))
    return Dataset(name, clips, dropped)


def asterisk_es(
    sounds_dir: Path = ASTERISK_SOUNDS, transcripts_file: Path = ASTERISK_TRANSCRIPTS
) -> Dataset:
    """Spanish telephony prompts (one female voice, 8 kHz)."""
    sounds_dir, transcripts_file = Path(sounds_dir), Path(transcripts_file)
    _require(sounds_dir, "asterisk-core-sounds-es-wav")
    _require(transcripts_file, "asterisk-core-sounds-es")
    text, encoding = _read_text(transcripts_file)

    transcripts: dict[str, list[str]] = defaultdict(list)
    dropped = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        key, colon, transcript = line.partition(":")
        if not colon:
            dropped.append(Dropped(line, None, MALFORMED_LINE, line))
            continue
        transcripts[key.strip()].append(transcript.strip())

    dataset = _build_from_folder(
        "asterisk_es", sounds_dir, transcripts, "es", "asterisk-core-sounds-es-wav", dropped
    )
    dataset.notes.append(f"transcripts read as {encoding} from {transcripts_file}")
    return dataset


_SPHINX_LINE = re.compile(r"<s>(?P<text>.*)</s>\s*\((?P<id>[^)]+)\)")


def _sphinx(name: str, folder: Path, transcription_file: Path) -> Dataset:
    _require(transcription_file, "pocketsphinx-testdata")
    text, encoding = _read_text(transcription_file)
    transcripts: dict[str, list[str]] = defaultdict(list)
    dropped = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SPHINX_LINE.fullmatch(line.strip())
        if match is None:
            dropped.append(Dropped(line.strip(), None, MALFORMED_LINE, line.strip()))
            continue
        transcripts[match["id"].strip()].append(match["text"].strip())

    dataset = _build_from_folder(name, folder, transcripts, "en", "pocketsphinx-testdata", dropped)
    dataset.notes.append(f"transcripts read as {encoding} from {transcription_file}")
    return dataset


def librivox_en(data_dir: Path = SPHINX_DATA) -> Dataset:
    """Five sentences of Sense and Sensibility read by a LibriVox volunteer (16 kHz)."""
    folder = Path(data_dir) / "librivox"
    return _sphinx("librivox_en", folder, folder / "transcription")


def cards_en(data_dir: Path = SPHINX_DATA) -> Dataset:
    """Five short utterances naming playing cards (16 kHz)."""
    folder = Path(data_dir) / "cards"
    return _sphinx("cards_en", folder, folder / "cards.transcription")


BUILT_IN = {"asterisk_es": asterisk_es, "librivox_en": librivox_en, "cards_en": cards_en}


def default_datasets() -> dict[str, Dataset]:
    return {name: build() for name, build in BUILT_IN.items()}


# --- user manifests -------------------------------------------------------------


def _json_row(path: Path, number: int, line: str) -> dict[str, str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: line {number} is not valid JSON ({error})") from None
    if not isinstance(row, dict):
        raise DataError(f"{path}: line {number} is not a JSON object")
    return {str(key): "" if value is None else str(value) for key, value in row.items()}


def _manifest_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The column names and the rows of a manifest, every cell a string.

    A file that cannot be parsed is a DataError; bad values are for the caller.
    """
    text, _ = _read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:
            return [], []
        except pd.errors.ParserError as error:
            raise DataError(f"{path}: not a valid CSV file ({error})") from None
        frame.columns = [str(column).strip() for column in frame.columns]
        return list(frame.columns), frame.fillna("").to_dict("records")
    if suffix == ".jsonl":
        lines = enumerate(text.splitlines(), start=1)
        rows = [_json_row(path, number, line) for number, line in lines if line.strip()]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return columns, rows
    raise DataError(f"{path}: unsupported manifest type {path.suffix!r}; use .csv or .jsonl")


def _check_columns(path: Path, columns: list[str]) -> None:
    unknown = [column for column in columns if column not in MANIFEST_COLUMNS]
    if unknown:
        raise DataError(
            f"{path}: unknown columns {unknown}; allowed: {', '.join(MANIFEST_COLUMNS)}"
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        raise DataError(
            f"{path}: missing columns {missing}; found: {', '.join(columns) or 'none'}"
        )


def _check_language(value: str) -> str:
    language = value.strip().lower()
    if not language:
        raise _Drop(MISSING_LANGUAGE)
    if not re.fullmatch(r"[a-z]{2,3}", language):
        raise _Drop(UNKNOWN_LANGUAGE, f"{value!r} is not an ISO 639 code such as 'en'")
    return language


def read_manifest(path: str | Path) -> Dataset:
    """Build a dataset from a user manifest (.csv or .jsonl)."""
    path = Path(path).absolute()
    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    columns, rows = _manifest_rows(path)
    _check_columns(path, columns)
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")

    clips, dropped, seen_ids = [], [], set()
    for row in rows:
        # JSONL rows may lack keys that other rows have: a missing key is an empty value.
        written_path = row.get("path", "").strip()
        clip_id = row.get("id", "").strip() or written_path
        clip_path = path.parent / written_path if written_path else None
        try:
            if clip_path is None:
                raise _Drop(MISSING_PATH)
            if clip_id in seen_ids:
                raise _Drop(DUPLICATE_ID)
            seen_ids.add(clip_id)
            duration_s, sample_rate = _probe_audio(clip_path)
            language = _check_language(row.get("language", ""))
            reference = _clean_reference(row.get("reference", ""))
            clip = Clip(
                clip_id, clip_path, language, duration_s, sample_rate, reference, str(path)
            )
            clips.append(clip)
        except _Drop as drop:
            dropped.append(Dropped(clip_id, clip_path, drop.reason, drop.detail))
    return Dataset(path.stem, clips, dropped, notes=[f"read from {path}"])


def load(name_or_path: str | Path) -> Dataset:
    """A built-in dataset by name (see ``BUILT_IN``) or a user manifest file."""
    if str(name_or_path) in BUILT_IN:
        return BUILT_IN[str(name_or_path)]()
    path = Path(name_or_path)
    if not path.exists():
        raise DataError(
            f"{name_or_path!r} is neither a built-in dataset ({', '.join(BUILT_IN)}) "
            "nor an existing manifest file"
        )
    return read_manifest(path)


def write_manifest(dataset: Dataset, path: str | Path) -> Path:
    """Write the kept clips as JSONL that ``load`` reads back (absolute paths).

    Written to a temporary file in the same folder, then renamed, so readers
    never see a half-written manifest.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "id": clip.id,
                "path": str(Path(clip.path).resolve()),
                "reference": clip.reference,
                "language": clip.language,
            },
            ensure_ascii=False,
        )
        for clip in dataset.clips
    ]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def filter(
    dataset: Dataset,
    language: str | None = None,
    max_duration_s: float | None = None,
    min_duration_s: float | None = None,
    limit: int | None = None,
) -> Dataset:
    """A subset of ``dataset``, in its order; ``limit`` picks evenly spaced clips."""
    if limit is not None and limit < 0:
        raise DataError(f"limit must be 0 or more, got {limit}")
    both_bounds = min_duration_s is not None and max_duration_s is not None
    if both_bounds and min_duration_s > max_duration_s:
        raise DataError(f"min_duration_s {min_duration_s} is above max_duration_s {max_duration_s}")
    clips = [
        clip
        for clip in dataset.clips
        if (language is None or clip.language == language)
        and (max_duration_s is None or clip.duration_s <= max_duration_s)
        and (min_duration_s is None or clip.duration_s >= min_duration_s)
    ]
    if limit is not None and limit < len(clips):
        clips = [clips[i * len(clips) // limit] for i in range(limit)]
    criteria = dict(
        language=language, max_duration_s=max_duration_s, min_duration_s=min_duration_s, limit=limit
    )
    chosen = ", ".join(f"{key}={value}" for key, value in criteria.items() if value is not None)
    note = f"filtered ({chosen or 'no criteria'}): {len(clips)} of {len(dataset.clips)} clips"
    return Dataset(dataset.name, clips, list(dataset.dropped), [*dataset.notes, note])
