"""The one-line setup every notebook starts with.

    session = setup(globals(), "02_grid_search")

It resolves the hardware target, joins the workbook's run (or starts one with
the notebook's mode), applies quick-mode sizes, and sets display options.

Decisions:
- Quick-mode sizes live in one place, ``params/quick.yaml`` (top-level keys:
  notebook names or ``all``). In a batch run the workbook injects them as
  parameters, below the target's own parameter file (so a value set there
  wins); in JupyterLab, ``quick = True`` makes :func:`setup` apply them. A
  key that is not one of the notebook's parameters is an error naming the
  file and the key, so a typo cannot silently keep a full-size run.
- The run's mode (``full`` / ``quick``) is stored with every trial and KPI
  row (see :mod:`saraikit.core.store`), so a smoke run never stands in for a
  full run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import seaborn as sns

from saraikit.core import hardware, paths
from saraikit.core.errors import ConfigError
from saraikit.core.store import ResultsStore
from saraikit.report.workbook import quick_file, quick_values


@dataclass
class Session:
    """What a notebook needs to store and label its figures."""

    store: ResultsStore
    run_id: str
    target: str
    mode: str
    fingerprint: hardware.Fingerprint
    notebook: str

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def describe(self) -> str:
        fp = self.fingerprint
        return (f"target {self.target} ({fp.cpu_model}, {fp.logical_cores} logical cores), run {self.run_id}, "
                f"mode {self.mode}")


def quick_overrides(notebook: str, namespace: dict, path: Path | None = None) -> dict:
    """:func:`quick_values`, checked against the notebook's parameters (``namespace``)."""
    path = path or quick_file()
    values = quick_values(notebook, path)
    unknown = sorted(k for k in values if k not in namespace)
    if unknown:
        raise ConfigError(f"{path}: {notebook}: unknown parameter(s) {unknown}; the notebook's parameters cell "
                          "must define every key quick mode overrides")
    return values


def setup(namespace: dict, notebook: str) -> Session:
    """Apply quick sizes to ``namespace`` (the notebook's globals) and return the run's session."""
    quick = bool(namespace.get("quick", False))
    if quick and os.environ.get("SARAIKIT_BATCH") != "1":  # the workbook has injected them already
        namespace.update(quick_overrides(notebook, namespace))
    mode = "quick" if quick else "full"
    store = ResultsStore()
    target = hardware.target_slug(namespace.get("target"))
    run_id = namespace.get("run_id") or store.start_run(target=target, notes=notebook, mode=mode)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_colwidth", 90)
    sns.set_theme(style="whitegrid")
    namespace["target"], namespace["run_id"] = target, run_id
    return Session(store, run_id, target, store.run_mode(run_id), hardware.fingerprint(), notebook)
