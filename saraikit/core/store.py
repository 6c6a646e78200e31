"""The results database: every figure is one row in SQLite.

Schema (three tables, one view):

- ``runs``: one row per run (run id, hardware target, fingerprint JSON, git
  commit, package versions, start time, notes).
- ``trials``: one row per measured configuration (experiment, model name and
  sha256, config JSON and its key, status ok/failed, error, the method JSON
  and the raw samples JSON so later comparisons can bootstrap them).
- ``results``: one row per figure (metric, value, unit, n, provenance:
  measured / derived / estimated), pointing at its trial and run.
- ``results_full``: the view a reader wants, with the run's target,
  fingerprint, commit and versions joined onto every figure.

Decisions:
- stdlib sqlite3 in WAL mode with ``synchronous=FULL``; a trial and all its
  figures are written in one transaction, so a process killed mid-run loses
  at most the trial in flight and never corrupts earlier rows.
- A failed trial is a row too (status ``failed`` with the reason); nothing
  that was attempted disappears silently.
- One database for all targets (``outputs/results.sqlite``) so runs can be
  compared across targets; the target is a column.
- Every run and trial carries its mode, ``full`` or ``quick``: a quick run
  reuses the code paths on small samples, and its figures are never read as
  full-run figures.
- Trial identity: ``trials.identity`` is a hash of everything that could
  change a figure: the experiment, the configuration (including a hash of
  the input feeds when the caller gives one), the model sha256, the package
  versions and the hardware fingerprint of the run, and the mode. A second
  run measures again; reusing a stored trial is opt-in (``find_reusable`` +
  ``record_reused``), and a reused trial is a new row that names the trial
  it copies (``reused_from``), so the report can say "reused from run X".
- Runs measured elsewhere (a Dask worker of another target): the head starts
  the run with the worker's fingerprint (``start_run(fp=...)``; the run's
  package versions are the fingerprint's), the worker measures into a scratch
  database, and the head copies its trials in with :meth:`ResultsStore.import_trials`
  in ONE transaction, keeping each trial's identity and renumbering the
  references between trials (``reused_from``, a KPI's ``source_trials``).
  The head's database has one writer: the head.
- Schema versions: ``PRAGMA user_version`` holds the schema version
  (:data:`SCHEMA_VERSION`). An older database is backed up next to itself
  and migrated in place; a newer one is refused with a message naming both
  versions.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from saraikit.core import paths
from saraikit.core.errors import SaraikitError
from saraikit.core.hardware import Fingerprint, fingerprint, package_versions, target_slug

PROVENANCES = ("measured", "derived", "estimated")
MODES = ("full", "quick")
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    target        TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    hardware_hash TEXT NOT NULL,
    git_commit    TEXT,
    versions      TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    notes         TEXT,
    mode          TEXT NOT NULL DEFAULT 'full'
);
CREATE TABLE IF NOT EXISTS trials (
    trial_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL REFERENCES runs(run_id),
    experiment   TEXT NOT NULL,
    model_name   TEXT,
    model_sha256 TEXT,
    config       TEXT NOT NULL,
    config_key   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error        TEXT,
    method       TEXT,
    samples      TEXT,
    created_at   TEXT NOT NULL,
    mode         TEXT NOT NULL DEFAULT 'full',
    identity     TEXT,
    reused_from  INTEGER REFERENCES trials(trial_id)
);
CREATE TABLE IF NOT EXISTS results (
    result_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id     INTEGER NOT NULL REFERENCES trials(trial_id),
    metric       TEXT NOT NULL,
    value        REAL,
    unit         TEXT,
    n            INTEGER,
    provenance   TEXT NOT NULL CHECK (provenance IN ('measured', 'derived', 'estimated')),
    extra        TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_lookup ON trials(experiment, model_sha256, config_key, status);
CREATE INDEX IF NOT EXISTS trials_identity ON trials(identity, status);
CREATE INDEX IF NOT EXISTS results_trial ON results(trial_id);
CREATE VIEW IF NOT EXISTS results_full AS
    SELECT r.result_id, t.trial_id, t.run_id, ru.target, ru.hardware_hash, ru.fingerprint,
           ru.git_commit, ru.versions, t.experiment, t.model_name, t.model_sha256,
           t.config, t.config_key, t.status, t.error, t.method, t.mode, t.identity, t.reused_from,
           r.metric, r.value, r.unit, r.n, r.provenance, r.extra, r.created_at
    FROM results r JOIN trials t ON r.trial_id = t.trial_id JOIN runs ru ON t.run_id = ru.run_id;
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=cwd or paths.project_root(), capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


@dataclass
class Figure:
    """One figure to store: metric, value, unit, n, provenance."""

    metric: str
    value: float | None
    unit: str = ""
    n: int | None = None
    provenance: str = "measured"
    extra: dict = field(default_factory=dict)


@dataclass
class Trial:
    """One measured configuration and its figures (written in one transaction)."""

    experiment: str
    config: dict
    figures: list[Figure] = field(default_factory=list)
    model_name: str | None = None
    model_sha256: str | None = None
    status: str = "ok"
    error: str | None = None
    method: dict = field(default_factory=dict)
    samples: list[float] | None = None
    config_key: str | None = None
    inputs_hash: str | None = None  # hash of the input feeds, when the caller has them
    mode: str | None = None  # None: the run's mode

    def key(self) -> str:
        return self.config_key or json.dumps(self.config, sort_keys=True, default=str)


def feeds_hash(feeds) -> str:
    """A short sha256 of input feeds (a mapping of arrays, or a list of them): part of a trial's identity."""
    import numpy as np

    digest = hashlib.sha256()
    items = feeds if isinstance(feeds, (list, tuple)) else [feeds]
    for item in items:
        for name in sorted(item):
            array = np.ascontiguousarray(item[name])
            digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def trial_identity(trial: Trial, versions: str, hardware_hash: str, mode: str) -> str:
    """Everything that could change the trial's figures, hashed (see the module docstring)."""
    blob = json.dumps({"experiment": trial.experiment, "config": trial.key(), "model_sha256": trial.model_sha256,
                       "inputs": trial.inputs_hash, "versions": versions, "hardware": hardware_hash,
                       "mode": mode}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class ResultsStore:
    """A handle on the SQLite results database."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else paths.results_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrated_from: tuple[int, Path] | None = None  # (old version, backup file) after a migration
        with self._connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            has_runs = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
            if version > SCHEMA_VERSION:
                raise SaraikitError(
                    f"results database {self.path} has schema version {version}, newer than this saraikit "
                    f"(version {SCHEMA_VERSION}): update saraikit, or point SARAIKIT_OUTPUTS elsewhere")
            if has_runs and version < SCHEMA_VERSION:
                self._migrate(con, version)
            con.executescript(SCHEMA)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _migrate(self, con, version: int) -> None:
        """Back the database up next to itself, then add the columns of schema 2 in one transaction."""
        backup = self.path.with_name(f"{self.path.stem}.v{version}-backup-"
                                     f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}{self.path.suffix}")
        target = sqlite3.connect(backup)
        try:
            con.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal/-shm beside it
        finally:
            target.close()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.execute("ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'full'")
            con.execute("UPDATE runs SET mode = 'quick' WHERE notes LIKE '%quick=True%'")
            for column in ("mode TEXT NOT NULL DEFAULT 'full'", "identity TEXT",
                           "reused_from INTEGER REFERENCES trials(trial_id)"):
                con.execute(f"ALTER TABLE trials ADD COLUMN {column}")
            con.execute("UPDATE trials SET mode = (SELECT mode FROM runs WHERE runs.run_id = trials.run_id)")
            con.execute("DROP VIEW IF EXISTS results_full")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.migrated_from = (version, backup)

    @contextmanager
    def _connect(self):
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            yield con
        except sqlite3.DatabaseError as exc:
            raise SaraikitError(f"results database {self.path}: {exc}") from exc
        finally:
            con.close()

    # --- writing -----------------------------------------------------------------
    def start_run(self, target: str | None = None, notes: str = "", run_id: str | None = None,
                  fp: Fingerprint | None = None, mode: str = "full") -> str:
        """Register a run (idempotent for an existing run id) and return its id."""
        if mode not in MODES:
            raise SaraikitError(f"run mode {mode!r} is not one of {MODES}")
        fp = fp or fingerprint()
        run_id = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
        with self._connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO runs (run_id, target, fingerprint, hardware_hash, git_commit, versions, "
                "started_at, notes, mode) VALUES (?,?,?,?,?,?,?,?,?)",
                (run_id, target_slug(target, fp), json.dumps(fp.to_dict()), fp.digest(),
                 git_commit(), json.dumps(fp.packages or package_versions()), _now(), notes, mode),
            )
        return run_id

    def run_mode(self, run_id: str) -> str:
        with self._connect() as con:
            row = con.execute("SELECT mode FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise SaraikitError(f"run {run_id!r} is not in {self.path}: start it with start_run() first")
        return row[0]

    def record(self, run_id: str, trial: Trial, reused_from: int | None = None) -> int:
        """Write a trial and its figures atomically; return the trial id."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                trial_id = self._insert(con, run_id, trial, reused_from)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return trial_id

    def import_trials(self, run_id: str, trials: list[tuple[int, Trial, int | None, str | None]]) -> dict[int, int]:
        """Copy trials measured into another database: ``(old id, trial, old reused_from, identity)`` each.

        All in one transaction (a head killed mid-import stores none of them).
        Identities are kept as measured; ``reused_from`` and the ``source_trials``
        of a figure's extra are renumbered when they point at a trial of this
        batch. Returns old id -> new id.
        """
        mapping: dict[int, int] = {}
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                for old_id, trial, old_reused, identity in trials:
                    for fig in trial.figures:
                        if "source_trials" in fig.extra:
                            fig.extra = {**fig.extra, "source_trials": [mapping.get(int(t), int(t))
                                                                        for t in fig.extra["source_trials"]]}
                    reused = mapping.get(old_reused) if old_reused is not None else None
                    mapping[int(old_id)] = self._insert(con, run_id, trial, reused, identity)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return mapping

    def _insert(self, con, run_id: str, trial: Trial, reused_from: int | None, identity: str | None = None) -> int:
        for fig in trial.figures:
            if fig.provenance not in PROVENANCES:
                raise SaraikitError(f"figure {fig.metric!r}: provenance {fig.provenance!r} "
                                    f"is not one of {PROVENANCES}")
        if trial.mode is not None and trial.mode not in MODES:
            raise SaraikitError(f"trial mode {trial.mode!r} is not one of {MODES}")
        now = _now()
        run = con.execute("SELECT versions, hardware_hash, mode FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if run is None:
            raise SaraikitError(f"run {run_id!r} is not in {self.path}: start it with start_run() first")
        mode = trial.mode or run[2]
        cur = con.execute(
            "INSERT INTO trials (run_id, experiment, model_name, model_sha256, config, "
            "config_key, status, error, method, samples, created_at, mode, identity, reused_from) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, trial.experiment, trial.model_name, trial.model_sha256,
             json.dumps(trial.config, sort_keys=True, default=str), trial.key(),
             trial.status, trial.error, json.dumps(trial.method, default=str),
             json.dumps(trial.samples) if trial.samples is not None else None, now,
             mode, identity or trial_identity(trial, run[0], run[1], mode), reused_from),
        )
        trial_id = cur.lastrowid
        con.executemany(
            "INSERT INTO results (trial_id, metric, value, unit, n, provenance, extra, "
            "created_at) VALUES (?,?,?,?,?,?,?,?)",
            [(trial_id, f.metric, None if f.value is None else float(f.value), f.unit,
              f.n, f.provenance, json.dumps(f.extra, default=str), now)
             for f in trial.figures],
        )
        return trial_id

    # --- reading -----------------------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        with self._connect() as con:
            return pd.read_sql_query(sql, con, params=params)

    def results(self, experiment: str | None = None, target: str | None = None,
                run_id: str | None = None) -> pd.DataFrame:
        """Tidy figures: one row per figure with run, hardware and trial columns."""
        clauses, params = [], []
        for column, value in (("experiment", experiment), ("target", target), ("run_id", run_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self.query(f"SELECT * FROM results_full {where} ORDER BY result_id", tuple(params))

    def trials(self, experiment: str | None = None, run_id: str | None = None) -> pd.DataFrame:
        clauses, params = [], []
        for column, value in (("experiment", experiment), ("run_id", run_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        frame = self.query(f"SELECT * FROM trials {where} ORDER BY trial_id", tuple(params))
        frame["samples"] = frame["samples"].map(lambda s: json.loads(s) if isinstance(s, str) else None)
        return frame

    def runs(self) -> pd.DataFrame:
        return self.query("SELECT * FROM runs ORDER BY started_at")

    def identity_of(self, run_id: str, trial: Trial) -> str:
        """The identity ``trial`` would get if recorded in ``run_id``."""
        with self._connect() as con:
            versions, hardware_hash, mode = con.execute(
                "SELECT versions, hardware_hash, mode FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return trial_identity(trial, versions, hardware_hash, trial.mode or mode)

    def find_reusable(self, run_id: str, trial: Trial) -> dict | None:
        """The newest successful trial of an *earlier* run with the same identity, or None.

        Reuse is the caller's choice (``reuse="matching"``); the identity covers the model,
        inputs, package versions, hardware and mode, so nothing else can differ.
        """
        identity = self.identity_of(run_id, trial)
        frame = self.query("SELECT * FROM trials WHERE identity = ? AND status = 'ok' AND run_id != ? "
                           "ORDER BY trial_id DESC LIMIT 1", (identity, run_id))
        if frame.empty:
            return None
        row = frame.iloc[0].to_dict()
        row["samples"] = json.loads(row["samples"]) if isinstance(row["samples"], str) else None
        return row

    def record_reused(self, run_id: str, original: dict, trial: Trial) -> int:
        """Record ``trial`` (built from a stored one) in this run as reused from ``original``."""
        if pd.notna(original.get("reused_from")):  # a copy: point at the measured original
            origin = int(original["reused_from"])
            origin_run = json.loads(original["method"] or "{}").get("reused_from_run", original["run_id"])
        else:
            origin, origin_run = int(original["trial_id"]), original["run_id"]
        trial.method = {**trial.method, "reused_from_trial": origin, "reused_from_run": origin_run}
        return self.record(run_id, trial, reused_from=origin)

    def has_trial(self, experiment: str, config_key: str, model_sha256: str | None,
                  target: str | None = None) -> bool:
        """True when a successful trial with this key exists (used to resume searches)."""
        sql = ("SELECT 1 FROM trials t JOIN runs r ON t.run_id = r.run_id WHERE t.experiment = ? "
               "AND t.config_key = ? AND t.status = 'ok' AND t.model_sha256 IS ?")
        params: list = [experiment, config_key, model_sha256]
        if target is not None:
            sql += " AND r.target = ?"
            params.append(target)
        with self._connect() as con:
            return con.execute(sql + " LIMIT 1", params).fetchone() is not None
