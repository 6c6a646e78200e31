"""A blinded human listening test (MOS) that runs in any browser.

``build_kit(samples, out_dir, seed)`` turns ``(system, text_id, wav_path)``
triples into a folder you can zip and send to raters::

    out_dir/index.html          one self-contained page (no network, no libraries)
    out_dir/audio/s001.wav ...  the clips, renamed to blinded ids

and a key that stays with you, ``<out_dir>-key.csv`` beside the kit by default
(``sample_id, system, text_id, source, audio``).  Raters open ``index.html``,
type their name, play each clip, pick a rating on the ACR scale of ITU-T
P.800 (5 Excellent, 4 Good, 3 Fair, 2 Poor, 1 Bad) and press Save.  The page
downloads ``ratings-<rater>.csv`` (columns ``rater, sample_id, rating``) with
a Blob and an ``<a download>`` link, which works from ``file://``.  When the
page is served over http (``serve_kit``) it also POSTs the CSV to ``save``,
and the server writes it into a ratings folder.

``read_ratings(csv_paths, key_csv)`` joins the CSVs with the key and checks
them; ``mos_table(ratings)`` gives the MOS per system with n ratings, n
raters and a bootstrap CI.

Decisions:

- Blinding: all samples are shuffled together (``seed``), so systems and
  texts are interleaved, and named ``s001``... in page order.  Nothing on the
  page or in the file names says which system made a clip.  The key is kept
  out of the kit folder so it cannot be served or zipped by accident.
- Audio is copied byte for byte.  Levels are *not* equalised: if systems
  differ in loudness, equalise before building the kit (louder often rates
  higher).
- The kit is built in a temporary folder beside ``out_dir`` and renamed into
  place, and the key is written to a temporary file and renamed, so an
  interrupted build leaves no half kit.  An existing kit or key is never
  overwritten (ratings collected against it would lose their meaning).
- Only rated samples are saved; the page says how many are still unrated.
  Saving again replaces that rater's file.
- ``?autofill=N`` (and optionally ``&rater=NAME``) in the page URL rates
  every sample N and saves: a hook for the automated browser test, harmless
  for raters, who open the page without a query.
- The MOS CI is a percentile bootstrap over individual ratings (``saraikit.
  stats.bootstrap_ci`` of the mean).  It treats ratings as independent, which
  they are not quite (the same rater rates many clips), so with few raters
  it is too narrow: read it beside ``n_raters``.  It is a *human* MOS
  ("MOS (listening test)"), unlike :mod:`saraikit.mos`'s predicted MOS.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd

from saraikit.core.errors import ConfigError, DataError
from saraikit.core.io import atomic_write_text
from saraikit.core.stats import bootstrap_ci

__all__ = [
    "KEY_COLUMNS",
    "LABEL",
    "RATING_COLUMNS",
    "Kit",
    "KitServer",
    "build_kit",
    "mos_table",
    "parse_ratings_csv",
    "read_ratings",
    "serve_kit",
]

LABEL = "MOS (listening test)"
RATING_COLUMNS = ["rater", "sample_id", "rating"]
KEY_COLUMNS = ["sample_id", "system", "text_id", "source", "audio"]
SCALE = [(5, "Excellent"), (4, "Good"), (3, "Fair"), (2, "Poor"), (1, "Bad")]
MAX_UPLOAD_BYTES = 1_000_000


@dataclass
class Kit:
    kit_dir: Path
    index_html: Path
    key_csv: Path
    sample_ids: list[str]
    systems: list[str]


# --------------------------------------------------------------------------
# building the kit


def _check_samples(samples: Sequence) -> list[tuple[str, str, Path]]:
    checked, seen = [], set()
    for position, sample in enumerate(samples):
        try:
            system, text_id, wav_path = sample
        except (TypeError, ValueError):
            raise DataError(f"samples[{position}] must be (system, text_id, wav_path), got {sample!r}") from None
        for name, value in (("system", system), ("text_id", text_id)):
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"samples[{position}]: {name} must be a non-empty str, got {value!r}")
        path = Path(wav_path)
        if not path.is_file():
            raise DataError(f"samples[{position}] ({system}, {text_id}): no such audio file {path}")
        if (system, text_id) in seen:
            raise DataError(f"samples[{position}]: ({system}, {text_id}) is listed twice")
        seen.add((system, text_id))
        checked.append((system, text_id, path))
    if not checked:
        raise DataError("a listening kit needs at least one sample")
    return checked


def _sample_html(number: int, sample_id: str, audio: str) -> str:
    radios = "\n".join(
        f'      <label><input type="radio" name="rate-{sample_id}" value="{score}"> {score} {label}</label>'
        for score, label in SCALE
    )
    return f"""  <section class="sample" data-sample-id="{sample_id}">
    <h2>Sample {number} <small>({sample_id})</small></h2>
    <audio controls preload="none" src="{html.escape(audio)}"></audio>
    <fieldset><legend>How natural does it sound?</legend>
{radios}
    </fieldset>
  </section>"""


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Listening test</title>
<style>
  body { font-family: sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em; }
  .sample { border: 1px solid #ccc; border-radius: 6px; padding: 0.5em 1em; margin: 1em 0; }
  .sample h2 { font-size: 1.1em; } small { color: #777; font-weight: normal; }
  fieldset { border: none; padding: 0; } label { margin-right: 1em; white-space: nowrap; }
  #status { font-weight: bold; }
</style>
</head>
<body>
<h1>Listening test</h1>
<p>Please use headphones in a quiet room and keep the volume the same for every sample.
Play each sample at least once, then rate how natural the speech sounds:
5 Excellent, 4 Good, 3 Fair, 2 Poor, 1 Bad. The samples are in random order.</p>
<p><label>Your name: <input id="rater" type="text" autocomplete="name"></label></p>
__SAMPLES__
<p><button id="save" type="button">Save ratings</button> <span id="status"></span></p>
<p>Saving downloads a file <code>ratings-&lt;your name&gt;.csv</code>; please send it back.</p>
<script>
"use strict";
const SAMPLE_IDS = __SAMPLE_IDS__;

function csvField(value) {
  const text = String(value);
  return /[",\\r\\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function setStatus(text, state) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.dataset.state = state;
}

function collectRows(rater) {
  const rows = [];
  for (const id of SAMPLE_IDS) {
    const checked = document.querySelector('input[name="rate-' + id + '"]:checked');
    if (checked) rows.push([rater, id, checked.value]);
  }
  return rows;
}

function download(text, fileName) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], {type: "text/csv"}));
  link.download = fileName;
  document.body.appendChild(link);
  link.click();
  setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}

function save() {
  const rater = document.getElementById("rater").value.trim();
  if (!rater) { setStatus("Please type your name first.", "error"); return; }
  const rows = collectRows(rater);
  if (rows.length === 0) { setStatus("Nothing rated yet.", "error"); return; }
  const text = ["rater,sample_id,rating"].concat(rows.map(r => r.map(csvField).join(","))).join("\\n") + "\\n";
  const fileName = "ratings-" + rater.replace(/[^A-Za-z0-9_-]+/g, "_") + ".csv";
  download(text, fileName);
  const unrated = SAMPLE_IDS.length - rows.length;
  const note = unrated ? " (" + unrated + " not rated yet)" : "";
  setStatus("Saved " + rows.length + " ratings to " + fileName + note, "downloaded");
  if (location.protocol === "http:" || location.protocol === "https:") {
    fetch("save?file=" + encodeURIComponent(fileName), {method: "POST", headers: {"Content-Type": "text/csv"}, body: text})
      .then(r => r.text().then(body => setStatus(r.ok ? "Saved " + rows.length + " ratings on the server" + note
                                                     : "Server did not save: " + body, r.ok ? "saved" : "error")))
      .catch(e => setStatus("Downloaded, but the server could not be reached: " + e, "error"));
  }
}

document.getElementById("save").addEventListener("click", save);

const params = new URLSearchParams(location.search);
if (params.has("autofill")) {
  const score = params.get("autofill");
  for (const id of SAMPLE_IDS) {
    const radio = document.querySelector('input[name="rate-' + id + '"][value="' + score + '"]');
    if (radio) radio.checked = true;
  }
  document.getElementById("rater").value = params.get("rater") || "autofill";
  save();
}
</script>
</body>
</html>
"""


def _page(entries: list[tuple[str, str]]) -> str:
    sections = "\n".join(_sample_html(i + 1, sample_id, audio) for i, (sample_id, audio) in enumerate(entries))
    sample_ids = json.dumps([sample_id for sample_id, _ in entries])
    return _PAGE.replace("__SAMPLES__", sections).replace("__SAMPLE_IDS__", sample_ids)


def _key_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=KEY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def build_kit(
    samples: Sequence[tuple[str, str, str | Path]],
    out_dir: str | Path,
    seed: int = 0,
    key_path: str | Path | None = None,
) -> Kit:
    """Write a blinded listening kit to ``out_dir`` and its key to ``key_path``.

    ``key_path`` defaults to ``<out_dir>-key.csv`` beside the kit.  Refuses
    (ConfigError) to overwrite an existing kit or key.
    """
    checked = _check_samples(samples)
    out_dir = Path(out_dir)
    key_path = Path(key_path) if key_path is not None else out_dir.with_name(f"{out_dir.name}-key.csv")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} already exists and is not empty; build the kit in a new folder")
    if key_path.exists():
        raise ConfigError(f"{key_path} already exists; it may be the key of ratings you collected")
    if key_path.resolve().is_relative_to(out_dir.resolve()):
        raise ConfigError(f"the key {key_path} must not be inside the kit folder {out_dir}")

    order = np.random.default_rng(seed).permutation(len(checked))
    width = max(3, len(str(len(checked))))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        (staging / "audio").mkdir()
        entries, key_rows = [], []
        for position, index in enumerate(order, start=1):
            system, text_id, source = checked[index]
            sample_id = f"s{position:0{width}d}"
            audio = f"audio/{sample_id}{source.suffix.lower()}"
            shutil.copyfile(source, staging / audio)
            entries.append((sample_id, audio))
            key_rows.append({"sample_id": sample_id, "system": system, "text_id": text_id,
                             "source": str(source), "audio": audio})
        (staging / "index.html").write_text(_page(entries), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above); os.replace needs it gone or empty
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write_text(key_path, _key_csv(key_rows))
    systems = sorted({system for system, _, _ in checked})
    return Kit(out_dir, out_dir / "index.html", key_path, [sample_id for sample_id, _ in entries], systems)


# --------------------------------------------------------------------------
# reading ratings


def parse_ratings_csv(text: str, source: str = "ratings") -> pd.DataFrame:
    """Rows of one ratings CSV, checked: columns rater, sample_id, rating (an integer 1-5)."""
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{source}: not a readable CSV ({error})") from None
    missing = [column for column in RATING_COLUMNS if column not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; expected {', '.join(RATING_COLUMNS)}")
    frame = frame[RATING_COLUMNS].copy()
    for line, row in zip(range(2, len(frame) + 2), frame.itertuples(index=False)):
        if not row.rater.strip() or not row.sample_id.strip():
            raise DataError(f"{source}, line {line}: empty rater or sample_id")
        if row.rating.strip() not in {str(score) for score, _ in SCALE}:
            raise DataError(f"{source}, line {line}: rating must be an integer from 1 to 5, got {row.rating!r}")
    frame["rating"] = frame["rating"].astype(int)
    return frame


def _read_key(key_csv: str | Path) -> pd.DataFrame:
    key_csv = Path(key_csv)
    if not key_csv.is_file():
        raise DataError(f"{key_csv}: no such key file")
    key = pd.read_csv(key_csv, dtype=str, keep_default_na=False)
    missing = [column for column in ("sample_id", "system", "text_id") if column not in key.columns]
    if missing:
        raise DataError(f"{key_csv}: not a listening-kit key, missing column(s) {', '.join(missing)}")
    return key


def _ratings_files(csv_paths) -> list[Path]:
    if isinstance(csv_paths, (str, Path)) and Path(csv_paths).is_dir():
        return sorted(Path(csv_paths).glob("ratings-*.csv"))
    if isinstance(csv_paths, (str, Path)):
        return [Path(csv_paths)]
    return [Path(path) for path in csv_paths]


def read_ratings(csv_paths: str | Path | Iterable[str | Path], key_csv: str | Path) -> pd.DataFrame:
    """All ratings joined with the key: rater, sample_id, rating, system, text_id, file.

    ``csv_paths`` is a list of files, one file, or a folder (its
    ``ratings-*.csv``).  Raises DataError on unknown sample ids, a rater
    rating the same sample twice, or no ratings at all.
    """
    key = _read_key(key_csv)
    frames = []
    for path in _ratings_files(csv_paths):
        if not path.is_file():
            raise DataError(f"{path}: no such ratings file")
        frame = parse_ratings_csv(path.read_text(encoding="utf-8-sig"), str(path))
        unknown = sorted(set(frame["sample_id"]) - set(key["sample_id"]))
        if unknown:
            raise DataError(f"{path}: sample id(s) not in the key {key_csv}: {', '.join(unknown[:5])}")
        frames.append(frame.assign(file=str(path)))
    if not frames or not sum(len(frame) for frame in frames):
        raise DataError(f"no ratings found in {csv_paths}")
    ratings = pd.concat(frames, ignore_index=True)
    repeated = ratings[ratings.duplicated(["rater", "sample_id"], keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        raise DataError(
            f"rater {first.rater!r} rated {first.sample_id} more than once "
            f"(in {', '.join(sorted(set(repeated['file'])))}); keep one file per rater"
        )
    joined = ratings.merge(key[["sample_id", "system", "text_id"]], on="sample_id", how="left")
    return joined[["rater", "sample_id", "rating", "system", "text_id", "file"]]


def mos_table(ratings: pd.DataFrame, confidence: float = 0.95, n_boot: int = 2000, seed: int | None = 0) -> pd.DataFrame:
    """MOS per system with its bootstrap CI, n ratings, n raters and n texts (best first)."""
    missing = [column for column in ("system", "rater", "text_id", "rating") if column not in ratings.columns]
    if missing:
        raise DataError(f"ratings need column(s) {', '.join(missing)}; build them with read_ratings")
    if ratings.empty:
        raise DataError("no ratings to summarise")
    rows = []
    for system, group in ratings.groupby("system", sort=True):
        interval = bootstrap_ci(group["rating"].to_numpy(float), np.mean, confidence, n_boot, seed)
        rows.append({
            "system": system, "mos": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
            "n_ratings": len(group), "n_raters": group["rater"].nunique(), "n_texts": group["text_id"].nunique(),
            "label": LABEL,
        })
    return pd.DataFrame(rows).sort_values("mos", ascending=False, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------
# serving the kit on a local network


_SAFE_FILE = re.compile(r"ratings-[A-Za-z0-9_-]+\.csv")


class _KitHandler(SimpleHTTPRequestHandler):
    """Serves the kit folder; ``POST /save?file=ratings-<rater>.csv`` stores a ratings CSV."""

    def __init__(self, *args, ratings_dir: Path, received: list, **kwargs):
        self.ratings_dir = ratings_dir
        self.received = received
        super().__init__(*args, **kwargs)

    def _reply(self, status: int, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        if url.path != "/save":
            self._reply(404, f"unknown endpoint {url.path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_UPLOAD_BYTES:
            self._reply(400, f"body must be 1 to {MAX_UPLOAD_BYTES} bytes, got {length}")
            return
        name = parse_qs(url.query).get("file", [""])[0]
        if not _SAFE_FILE.fullmatch(name):
            self._reply(400, f"file must look like ratings-<name>.csv, got {name!r}")
            return
        try:
            text = self.rfile.read(length).decode("utf-8")
            parse_ratings_csv(text, name)
        except (UnicodeDecodeError, DataError) as error:
            self._reply(400, str(error))
            return
        atomic_write_text(self.ratings_dir / name, text)
        self.received.append(self.ratings_dir / name)
        self._reply(200, f"saved {name}")

    def log_message(self, format: str, *args) -> None:  # keep notebooks and test output quiet
        pass


class KitServer:
    """A running kit server: ``url`` to open, ``received`` saved files, ``close()`` to stop."""

    def __init__(self, kit_dir: Path, ratings_dir: Path, host: str, port: int):
        self.received: list[Path] = []
        handler = partial(_KitHandler, directory=str(kit_dir), ratings_dir=ratings_dir, received=self.received)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/index.html"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> "KitServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve_kit(kit_dir: str | Path, ratings_dir: str | Path, host: str = "127.0.0.1", port: int = 0) -> KitServer:
    """Serve ``kit_dir`` over http and store posted ratings in ``ratings_dir``.

    ``port=0`` picks a free port (see ``server.url``).  Use ``host="0.0.0.0"``
    to let raters on the local network open it.
    """
    kit_dir, ratings_dir = Path(kit_dir), Path(ratings_dir)
    if not (kit_dir / "index.html").is_file():
        raise DataError(f"{kit_dir} is not a listening kit (no index.html); build it with build_kit")
    if ratings_dir.resolve().is_relative_to(kit_dir.resolve()):
        raise ConfigError(f"ratings_dir {ratings_dir} must not be inside the served kit {kit_dir}")
    ratings_dir.mkdir(parents=True, exist_ok=True)
    return KitServer(kit_dir, ratings_dir, host, port)
