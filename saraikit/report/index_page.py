"""``outputs/index.html``: every target and run side by side, with regressions flagged.

The page is static, self-contained HTML (no scripts, no network) built from
the results database and each run's ``summary.json``.

Regression rule: for each KPI (kpi, model, dataset) of a target and each
mode, the newest run is compared with the previous run of the same mode that
measured the same KPI: like with like, so a quick run never creates or hides
a regression of a full run.

- When both rows carry their raw samples, the comparison is
  :func:`saraikit.stats.compare` (bootstrap CI of the ratio of medians): a
  regression is a CI entirely on the bad side of 1.
- Otherwise, with confidence intervals only, a regression is a current
  interval entirely on the bad side of the previous one (no overlap); this is
  conservative: overlapping intervals are never called a regression.
- A single number without an interval is never flagged: a threshold on single
  numbers is exactly what the seeds got wrong.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from saraikit.core import paths, stats
from saraikit.report import kpi
from saraikit.core.io import atomic_write_text
from saraikit.core.store import ResultsStore


@dataclass
class Regression:
    target: str
    kpi: str
    model: str
    dataset: str
    mode: str
    previous: float
    current: float
    evidence: str
    regressed: bool


def _samples_by_trial(store: ResultsStore, trial_ids: list[int]) -> dict[int, list]:
    if not trial_ids:
        return {}
    marks = ",".join("?" * len(trial_ids))
    frame = store.query(f"SELECT trial_id, samples FROM trials WHERE trial_id IN ({marks})", tuple(trial_ids))
    return {int(r.trial_id): json.loads(r.samples) for r in frame.itertuples() if isinstance(r.samples, str)}


def regressions(store: ResultsStore, target: str) -> list[Regression]:
    rows = kpi.history(store, target)
    if rows.empty:
        return []
    samples = _samples_by_trial(store, [int(t) for t in rows["trial_id"]])
    found = []
    for (name, model, dataset, mode), group in rows.sort_values("trial_id").groupby(["kpi", "model", "dataset",
                                                                                    "mode"]):
        group = group.dropna(subset=["value"])
        if group["run_id"].nunique() < 2:
            continue
        current = group.iloc[-1]
        previous = group[group["run_id"] != current["run_id"]].iloc[-1]
        lower_is_better = kpi.KPIS[name].better == "lower"
        a, b = samples.get(int(previous["trial_id"])), samples.get(int(current["trial_id"]))
        if a and b and len(a) >= 6 and len(b) >= 6:
            cmp = stats.compare(a, b)
            bad = "slower" if lower_is_better else "faster"  # "slower" means the ratio CI is above 1
            regressed = cmp.verdict == bad
            evidence = f"ratio {cmp.ratio:.3f} (95% CI {cmp.ci_low:.3f} to {cmp.ci_high:.3f}), n={cmp.n_baseline}/{cmp.n_candidate}"
        elif not any(pd.isna(x) for x in (previous["ci_low"], previous["ci_high"], current["ci_low"], current["ci_high"])):
            regressed = (current["ci_low"] > previous["ci_high"]) if lower_is_better else (current["ci_high"] < previous["ci_low"])
            evidence = (f"CI {current['ci_low']:.4g} to {current['ci_high']:.4g} vs previous "
                        f"{previous['ci_low']:.4g} to {previous['ci_high']:.4g}")
        else:
            regressed, evidence = False, "no interval: not compared"
        found.append(Regression(target, name, model, dataset, mode, float(previous["value"]), float(current["value"]),
                                evidence, bool(regressed)))
    return found


def _run_summaries(outputs: Path) -> list[dict]:
    found = []
    for summary in sorted(outputs.glob("*/runs/*/summary.json")):
        try:
            data = json.loads(summary.read_text())
        except ValueError:
            continue
        data["folder"] = summary.parent
        found.append(data)
    return found


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.ok{color:#17692f}.failed,.fail,.regressed{color:#b00020;font-weight:bold}
.inconclusive,.missing{color:#8a6d00}.small{color:#666;font-size:0.9em}
"""


def _table(rows: list[list], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def build_index(store: ResultsStore | None = None, outputs: Path | None = None) -> Path:
    """Write ``outputs/index.html`` and return its path."""
    store = store or ResultsStore()
    outputs = outputs or paths.outputs_dir()
    summaries = _run_summaries(outputs)
    targets = sorted({s["target"] for s in summaries} | set(store.runs()["target"]))
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>saraikit reports</title>"
             f"<style>{STYLE}</style></head><body><h1>saraikit: all targets and runs</h1>"
             f"<p class='small'>Built {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from {html.escape(str(store.path))}."
             f" Regressions are flagged only when a confidence interval says so (see saraikit/report.py).</p>"]
    for target in targets:
        parts.append(f"<h2>{html.escape(target)}</h2>")
        runs = [s for s in summaries if s["target"] == target]
        rows = []
        for s in sorted(runs, key=lambda s: s["run_id"], reverse=True):
            links = []
            for nb in s["notebooks"]:
                cls = "ok" if nb["status"] == "ok" else "failed"
                href = Path(nb["report_html"]).relative_to(outputs).as_posix() if nb.get("report_html") else None
                name = html.escape(nb["name"])
                links.append(f"<a class='{cls}' href='{href}'>{name}</a>" if href else f"<span class='{cls}'>{name}</span>")
            rows.append([html.escape(s["run_id"]), "quick" if s.get("quick") else "full",
                         f"{s.get('seconds', 0):.0f} s", " · ".join(links)])
        parts.append(_table(rows, ["run", "mode", "wall time", "notebooks (report without code)"]) if rows
                     else "<p>No workbook runs yet.</p>")
        ledger = kpi.ledger(store, target)
        measured = ledger[ledger["provenance"] != "missing"]
        if len(measured):
            kpi_rows = [[html.escape(str(r.label)), html.escape(str(r.model or "")), html.escape(str(r.dataset or "")),
                         f"{r.value:.4g} {html.escape(str(r.unit))}",
                         "" if pd.isna(r.ci_low) else f"{r.ci_low:.4g} to {r.ci_high:.4g}",
                         "" if pd.isna(r.n) else int(r.n), html.escape(str(r.provenance)),
                         html.escape(str(r.mode)) + (f" (reused from {html.escape(r.reused_from_run)})"
                                                     if isinstance(r.reused_from_run, str) else ""),
                         f"<span class='{r.verdict.split(':')[0]}'>{html.escape(str(r.verdict))}</span>"]
                        for r in measured.itertuples()]
            parts.append("<h3>KPI ledger (newest full run; quick figures only where no full run measured them, "
                         "labelled)</h3>" + _table(
                kpi_rows, ["KPI", "model", "dataset", "value", "95% CI", "n", "provenance", "mode", "vs target"]))
        found = regressions(store, target)
        if found:
            reg_rows = [[html.escape(r.kpi), html.escape(r.model), html.escape(r.dataset), html.escape(r.mode),
                         f"{r.previous:.4g}",
                         f"{r.current:.4g}", html.escape(r.evidence),
                         "<span class='regressed'>regression</span>" if r.regressed else "no significant regression"]
                        for r in found]
            parts.append("<h3>Newest run against the previous one</h3>" + _table(
                reg_rows, ["KPI", "model", "dataset", "mode", "previous", "current", "evidence", "verdict"]))
    parts.append("</body></html>")
    return atomic_write_text(outputs / "index.html", "\n".join(parts))
