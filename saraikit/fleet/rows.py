"""A worker's scratch database, handed back to the head as plain rows.

A notebook run on a worker measures into a scratch results database on that
worker (the head's database has one writer: the head). After each notebook
the worker sends the trials it added (:func:`export_trials`) and the head
copies them in one transaction (:func:`to_import` +
:meth:`saraikit.core.store.ResultsStore.import_trials`), keeping identities
and renumbering references between trials.
"""

from __future__ import annotations

import json

import pandas as pd

from saraikit.core.store import Figure, ResultsStore, Trial


def last_trial_id(store: ResultsStore) -> int:
    frame = store.query("SELECT COALESCE(MAX(trial_id), 0) AS last FROM trials")
    return int(frame.iloc[0]["last"])


def export_trials(store: ResultsStore, run_id: str, after: int = 0) -> list[dict]:
    """The trials of ``run_id`` with an id above ``after``, each with its figures, as plain dicts."""
    trials = store.query("SELECT * FROM trials WHERE run_id = ? AND trial_id > ? ORDER BY trial_id", (run_id, after))
    if trials.empty:
        return []
    marks = ",".join("?" * len(trials))
    results = store.query(f"SELECT * FROM results WHERE trial_id IN ({marks}) ORDER BY result_id",
                          tuple(int(t) for t in trials["trial_id"]))
    by_trial = {int(k): g.to_dict("records") for k, g in results.groupby("trial_id")}
    rows = []
    for row in trials.to_dict("records"):
        rows.append({**{k: (None if pd.isna(v) else v) for k, v in row.items()},
                     "figures": by_trial.get(int(row["trial_id"]), [])})
    return rows


def _figure(row: dict) -> Figure:
    return Figure(row["metric"], None if pd.isna(row["value"]) else float(row["value"]), row["unit"] or "",
                  None if pd.isna(row["n"]) else int(row["n"]), row["provenance"],
                  json.loads(row["extra"]) if row["extra"] else {})


def to_import(rows: list[dict]) -> list[tuple[int, Trial, int | None, str | None]]:
    """``(old id, trial, old reused_from, identity)`` for :meth:`ResultsStore.import_trials`."""
    items = []
    for row in rows:
        trial = Trial(experiment=row["experiment"], config=json.loads(row["config"]),
                      figures=[_figure(f) for f in row["figures"]], model_name=row["model_name"],
                      model_sha256=row["model_sha256"], status=row["status"], error=row["error"],
                      method=json.loads(row["method"]) if row["method"] else {},
                      samples=json.loads(row["samples"]) if row["samples"] else None,
                      config_key=row["config_key"], mode=row["mode"])
        reused = None if row["reused_from"] is None else int(row["reused_from"])
        items.append((int(row["trial_id"]), trial, reused, row["identity"]))
    return items
