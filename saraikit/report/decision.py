"""The report's decision, written from the KPI ledger (seed 004's scenarios, one definition).

Every sentence comes from a ledger row and :mod:`saraikit.core.verdict`: a
figure without an interval is reported as not judged, a KPI nobody measured
as missing, and only full-run figures decide (a quick run's row is named as
such and decides nothing).
"""

from __future__ import annotations

import pandas as pd

from saraikit.core.verdict import NOT_JUDGED, scenario

HEADLINES = (("audio_path_p50_ms", "audio-only path (STT + TTS, the seeds' 240 ms goal)"),
             ("v2v_ttfa_p50_ms", "voice-to-voice time to first audio"))


def _row(ledger: pd.DataFrame, kpi: str, model: str = "", dataset_suffix: str | None = None):
    """The default stack's row (model empty) of ``kpi``; all languages together unless a suffix is given."""
    rows = ledger[(ledger["kpi"] == kpi) & (ledger["provenance"] != "missing")]
    rows = rows[rows["model"].fillna("").astype(str) == model]
    datasets = rows["dataset"].fillna("").astype(str)
    if dataset_suffix:
        rows = rows[datasets.str.endswith(dataset_suffix)]
    elif datasets.str.contains("+", regex=False).any():
        rows = rows[datasets.str.contains("+", regex=False)]
    return rows.iloc[0] if len(rows) else None


def stack_comparison(ledger: pd.DataFrame, languages=("en", "es")) -> pd.DataFrame:
    """Default and best stacks side by side: each headline figure per language, with CI and verdict."""
    table = []
    for kpi, words in HEADLINES:
        for language in languages:
            for stack, model in (("default", ""), ("best (07_stack_search)", "best")):
                row = _row(ledger, kpi, model, f", {language}")
                table.append({"figure": words, "language": language, "stack": stack,
                              "P50 ms": None if row is None else row["value"],
                              "CI low": None if row is None else row["ci_low"],
                              "CI high": None if row is None else row["ci_high"],
                              "n": None if row is None else row["n"],
                              "target ms": None if row is None else row["target"],
                              "verdict": "not measured" if row is None else row["verdict"],
                              "mode": None if row is None else row["mode"]})
    return pd.DataFrame(table)


def _interval(row) -> str:
    if pd.isna(row["ci_low"]):
        return " (no confidence interval)"
    return f" (95% CI {row['ci_low']:.0f} to {row['ci_high']:.0f} ms, n={int(row['n'])}, {row['mode']} run)"


def decision_lines(ledger: pd.DataFrame, ceiling_ms: float) -> list[str]:
    """Markdown bullet lines: headline verdicts, failing and missing KPIs, and seed 004's scenario."""
    lines = []
    for kpi, words in HEADLINES:
        row = _row(ledger, kpi)
        if row is None:
            lines.append(f"- The {words} was not measured: no verdict.")
            continue
        lines.append(f"- The {words} is {row['value']:.0f} ms{_interval(row)} against a {row['target']:.0f} ms "
                     f"target: **{row['verdict']}**.")
    failed = [f"{r.label} ({', '.join(str(x) for x in (r.model, r.dataset) if isinstance(x, str) and x)})"
              for r in ledger[ledger["verdict"] == "fail"].itertuples()]
    if failed:
        lines.append(f"- KPIs that fail their target: {'; '.join(failed)}.")
    missing = ledger[ledger["provenance"] == "missing"]["kpi"].tolist()
    if missing:
        lines.append(f"- Not measured (shown as missing, never as measured): {', '.join(missing)}.")
    lines += best_stack_lines(ledger)
    lines.append(scenario_line(_row(ledger, "v2v_ttfa_p50_ms"), ceiling_ms))
    return lines


def best_stack_lines(ledger: pd.DataFrame, languages=("en", "es")) -> list[str]:
    """The best stack of 07_stack_search per language, beside the default, judged by the same rule."""
    lines = []
    for language in languages:
        best = _row(ledger, "v2v_ttfa_p50_ms", "best", f", {language}")
        if best is None:
            continue
        default = _row(ledger, "v2v_ttfa_p50_ms", "", f", {language}")
        versus = "" if default is None else f" (default stack: {default['value']:.0f} ms, {default['mode']} run)"
        lines.append(f"- Best stack (07_stack_search), {language}: voice-to-voice time to first audio "
                     f"{best['value']:.0f} ms{_interval(best)} against {best['target']:.0f} ms: **{best['verdict']}**"
                     f"{versus}.")
    return lines


def scenario_line(row, ceiling_ms: float) -> str:
    if row is None:
        return "- Seed 004's scenario: not decided, the voice-to-voice time was not measured."
    if row["mode"] != "full":
        return "- Seed 004's scenario: not decided from a quick run; run the full workbook."
    if row["verdict"] == NOT_JUDGED or pd.isna(row["ci_low"]):
        return "- Seed 004's scenario: not decided, the voice-to-voice figure has no confidence interval."
    found = scenario(row["value"], row["ci_low"], row["ci_high"], row["target"], ceiling_ms)
    name = "Borderline" if found.letter == "borderline" else f"Scenario {found.letter}"
    return (f"- {name} (seed 004, target {row['target']:.0f} ms, ceiling {ceiling_ms:.0f} ms): the stack "
            f"{found.meaning}.")
