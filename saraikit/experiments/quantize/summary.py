"""What a quantization run concludes: the summary table, the conclusion lines and the trade-off figure.

Everything here reads the frames notebook 01 builds (``decided``: the
``Recommendation.table`` of every model stacked, ``wer``: the
``tasks.wer_table`` rows with a ``model`` column) and writes no figure of its
own: every number in a sentence comes from those frames.

Decisions
---------
- Intervals are written by :func:`saraikit.core.stats.format_interval`
  ("12.3 (95% CI 11.9 to 12.8)"); a value without an interval says so
  instead of showing a bare number as if it had one.
- The quality budget's WER increase is a target: the conclusions judge the
  fastest variant's worst ΔWER against it with
  :func:`saraikit.core.verdict.goal_sentence`, on its paired CI. The rule
  that accepts or rejects (``recommend.recommend``) stays on the point
  estimate; the sentence shows when the CI does not back that decision.
- A quick run's conclusions carry a caveat line from the ``quick``
  parameter, never from the data.
- A drifted control (FP32 measured again, verdict other than "no significant
  difference") is a warning that the run's latency verdicts are not
  trustworthy.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from saraikit.core import stats
from saraikit.core.verdict import goal_sentence
from saraikit.experiments.quantize.recommend import QualityBudget, Recommendation

CONFIDENCE = 0.95
NO_DRIFT = "no significant difference"
QUICK_CAVEAT = "- **Quick mode**: a smoke run on small samples (sizes above); do not act on these recommendations."
DECISION_COLORS = {"baseline": "black", "recommended": "tab:green", "accepted": "tab:blue", "rejected": "tab:red",
                   "reference": "tab:purple", "control": "tab:gray"}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _signed(text: str, value: float) -> str:
    return f"+{text}" if value > 0 else text


def interval_text(value, low, high, unit: str = "", signed: bool = False) -> str:
    """``"12.3 ms (95% CI 11.9 to 12.8)"``; ``""`` without a value, ``"(no CI)"`` without bounds.

    ``unit`` follows the number as given (``" ms"``, ``"x"``)."""
    if _missing(value):
        return ""
    text = stats.format_value(value)
    text = (_signed(text, value) if signed else text) + unit
    if _missing(low) or _missing(high):
        return f"{text} (no CI)"
    return f"{text} ({stats.format_interval(value, low, high, CONFIDENCE)})"


def _wer_rows(wer: pd.DataFrame, model: str, candidate: str) -> pd.DataFrame:
    return wer[(wer["model"] == model) & (wer["candidate"] == candidate)]


def wer_cell(wer: pd.DataFrame, model: str, candidate: str) -> str:
    """WER per dataset of one candidate: ``"librivox_en 5.2 (95% CI ...); cards_en ..."``."""
    rows = _wer_rows(wer, model, candidate)
    return "; ".join(f"{r.dataset} {interval_text(r.wer_pct, r.wer_ci_low, r.wer_ci_high)}" for r in rows.itertuples())


def delta_cell(wer: pd.DataFrame, model: str, candidate: str, baseline: str = "fp32") -> str:
    """ΔWER against FP32 per dataset, in points with a sign; empty for the baseline."""
    if candidate == baseline:
        return ""
    rows = _wer_rows(wer, model, candidate)
    return "; ".join(f"{r.dataset} {interval_text(r.delta_wer_pp, r.delta_ci_low, r.delta_ci_high, signed=True)}"
                     for r in rows.itertuples())


def summary_table(decided: pd.DataFrame, wer: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: size, load time, P50 and ratio with CIs, fidelity, WER and ΔWER, the decision."""
    rows = list(decided.itertuples())
    table = pd.DataFrame({
        "model": decided["model"], "variant": decided["candidate"], "MB": decided["bytes"] / 1e6,
        "size ratio": decided["size_ratio"], "load s": decided["load_s"],
        "P50 ms [95% CI]": [interval_text(r.p50_ms, r.p50_ci_low, r.p50_ci_high) for r in rows],
        "n": decided["n"],
        "ratio vs FP32 [CI]": [interval_text(r.ratio, r.ratio_ci_low, r.ratio_ci_high) for r in rows],
        "verdict": decided["verdict"], "cosine": decided["cosine"], "SNR dB": decided["snr_db"],
        "length diff": decided["length_diff"],
        "WER % [CI]": [wer_cell(wer, r.model, r.candidate) for r in rows],
        "ΔWER pp [CI]": [delta_cell(wer, r.model, r.candidate) for r in rows],
        "status": decided["status"], "decision": decided["decision"], "why": decided["why"],
    })
    rounded = table.round({"MB": 1, "size ratio": 2, "load s": 2, "cosine": 4, "SNR dB": 1})
    return rounded.astype(object).fillna("").reset_index(drop=True)


# --- conclusions ----------------------------------------------------------------------


def worst_delta_sentence(wer: pd.DataFrame, model: str, candidate: str, budget: QualityBudget) -> str:
    """The candidate's largest ΔWER (dataset, CI) against the budget, in the words of ``goal_sentence``."""
    rows = _wer_rows(wer, model, candidate)
    if rows.empty or rows["delta_wer_pp"].isna().all():
        return "WER not measured"
    worst = rows.loc[rows["delta_wer_pp"].idxmax()]
    verdict = goal_sentence(worst["delta_wer_pp"], worst["delta_ci_low"], worst["delta_ci_high"],
                            budget.max_wer_increase_pp, "lower", unit="pp")
    figure = interval_text(worst["delta_wer_pp"], worst["delta_ci_low"], worst["delta_ci_high"], " pp", signed=True)
    return f"worst ΔWER {figure} on {worst['dataset']} {verdict}"


def _fastest_lines(table: pd.DataFrame, wer: pd.DataFrame, model: str, budget: QualityBudget) -> list[str]:
    ok = table[(table["role"] == "variant") & (table["status"] == "ok")]
    if ok.empty:
        return []
    fastest = ok.sort_values("p50_ms").iloc[0]
    ratio = interval_text(fastest.ratio, fastest.ratio_ci_low, fastest.ratio_ci_high, "x")
    counts = table["decision"].value_counts().to_dict()
    return [f"  - fastest variant: {fastest.candidate}, P50 {ratio} FP32's, {fastest.verdict}; "
            f"{worst_delta_sentence(wer, model, fastest.candidate, budget)}; "
            f"decision: {fastest.decision} ({fastest.why}).",
            "  - decisions: " + ", ".join(f"{k} {v}" for k, v in counts.items())]


def _reference_lines(rec: Recommendation, samples: Mapping[tuple[str, str], Sequence[float] | None]) -> list[str]:
    t = rec.table
    lines = []
    for ref in t[(t["role"] == "reference") & (t["status"] == "ok")].itertuples():
        text = (f"  - CTranslate2 {ref.candidate.removeprefix('ct2-')} encoder (reference): "
                f"P50 {interval_text(ref.ratio, ref.ratio_ci_low, ref.ratio_ci_high, 'x')} the ONNX FP32 encoder's")
        ours, theirs = samples.get((rec.model, rec.variant)), samples.get((rec.model, ref.candidate))
        if rec.variant and ours is not None and theirs is not None:
            c = stats.compare(theirs, ours)
            text += f"; {rec.variant} against it: {interval_text(c.ratio, c.ci_low, c.ci_high, 'x')}, {c.verdict}"
        lines.append(text + ".")
    return lines


def model_lines(rec: Recommendation, wer: pd.DataFrame, budget: QualityBudget,
                samples: Mapping[tuple[str, str], Sequence[float] | None]) -> list[str]:
    """The lines of one model: FP32's P50, the recommendation, the fastest variant, the CTranslate2 reference."""
    base = rec.table[rec.table["role"] == "baseline"].iloc[0]
    p50 = interval_text(base.p50_ms, base.p50_ci_low, base.p50_ci_high, " ms")
    lines = [f"- **{rec.model}** (FP32 P50 {p50}, n={int(base.n)}): {rec.message}"]
    return lines + _fastest_lines(rec.table, wer, rec.model, budget) + _reference_lines(rec, samples)


def budget_line(kind: str, budget: QualityBudget) -> str:
    """The gates of one model kind; a threshold set to None is not listed (it is not applied)."""
    thresholds = (("cosine", budget.min_cosine), ("SNR dB", budget.min_snr_db))
    gates = [f"WER +{budget.max_wer_increase_pp:g} pp"] + [f"{k} ≥ {v:g}" for k, v in thresholds if v is not None]
    return f"- Quality budget for {kind}: " + ", ".join(gates) + "."


def drift_lines(decided: pd.DataFrame) -> list[str]:
    """A warning per model whose FP32 control drifted, else one line saying none did."""
    drifted = decided[(decided["role"] == "control") & (decided["verdict"] != NO_DRIFT)]
    lines = [f"- **Warning**: FP32 of {row.model} measured again at the end ran "
             f"{interval_text(row.ratio, row.ratio_ci_low, row.ratio_ci_high, 'x')} the first measurement's P50: the "
             "machine's speed changed during the run, so its latency verdicts are not trustworthy; "
             "rerun on a quiet machine." for row in drifted.itertuples()]
    return lines or ["- Drift check: FP32 measured again after the variants did not differ significantly from the "
                     "first measurement for any model."]


def conclusion_lines(recommendations: Mapping[str, Recommendation], wer: pd.DataFrame,
                     budgets: Mapping[str, QualityBudget], kinds: Mapping[str, str],
                     samples: Mapping[tuple[str, str], Sequence[float] | None], target: str,
                     quick: bool) -> list[str]:
    """Markdown bullet lines of the run's conclusions (``budgets`` per model kind, ``kinds`` per model)."""
    lines = []
    for name, rec in recommendations.items():
        lines += model_lines(rec, wer, budgets[kinds[name]], samples)
    lines += [budget_line(kind, budget) for kind, budget in budgets.items()]
    decided = pd.concat([rec.table for rec in recommendations.values()], ignore_index=True)
    lines += drift_lines(decided)
    if quick:
        lines.append(QUICK_CAVEAT)
    lines.append(f"- Latency: P50 over n runs, each candidate in a fresh process, real inputs, on {target}. "
                 "WER samples are small (n in the table): read the CIs before the point values.")
    return lines


# --- the trade-off figure -------------------------------------------------------------


def _scatter(ax, shown: pd.DataFrame, y: str) -> None:
    sns.scatterplot(data=shown, x="ratio", y=y, hue="decision", palette=DECISION_COLORS,
                    hue_order=list(DECISION_COLORS), style="same length", markers={True: "o", False: "X"},
                    style_order=[True, False], s=70, ax=ax, legend=False)
    ax.errorbar(shown["ratio"], shown[y], xerr=[shown["ratio"] - shown["ratio_ci_low"],
                                                shown["ratio_ci_high"] - shown["ratio"]],
                fmt="none", ecolor="grey", alpha=0.5)
    for label, x_value, y_value in zip(shown["candidate"], shown["ratio"], shown[y]):
        ax.annotate(label, (x_value, y_value), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set(xlabel="P50 latency / FP32 (95% CI)", ylabel=y)


def unmeasured_note(sub: pd.DataFrame) -> str:
    """The title note of a model whose variants were rejected before WER (not transcribed)."""
    unmeasured = sub.loc[sub["ΔWER (pp)"].isna() & (sub["role"] == "variant"), "candidate"]
    return f"\n{len(unmeasured)} variant(s) not transcribed, rejected before WER" if len(unmeasured) else ""


def tradeoff_figure(decided: pd.DataFrame, models: Sequence[str], budget_of: Mapping[str, QualityBudget],
                    target: str):
    """ΔWER and cosine against the latency ratio, one column per model; red dashes: the quality budget."""
    plot = decided[decided["status"] == "ok"].rename(columns={"max_delta_wer_pp": "ΔWER (pp)",
                                                             "cosine": "cosine vs FP32"})
    plot = plot.assign(**{"same length": plot["length_diff"].fillna(0) == 0})  # reference rows: not applicable
    fig, axes = plt.subplots(2, len(models), figsize=(5.4 * len(models), 8.4), squeeze=False)
    for column, name in enumerate(models):
        sub = plot[plot["model"] == name]
        for ax, y in zip(axes[:, column], ["ΔWER (pp)", "cosine vs FP32"]):
            _scatter(ax, sub[sub[y].notna()], y)
        axes[0, column].axhline(budget_of[name].max_wer_increase_pp, color="red", lw=0.8, ls="--")
        if budget_of[name].min_cosine is not None:
            axes[1, column].axhline(budget_of[name].min_cosine, color="red", lw=0.8, ls="--")
        axes[0, column].set_title(name + unmeasured_note(sub), fontsize=10)
    handles = [Line2D([], [], marker="o", ls="", color=color, label=d) for d, color in DECISION_COLORS.items()]
    handles.append(Line2D([], [], marker="X", ls="", color="grey", label="output length changed"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"INT8 variants vs FP32 on real inputs, {target} (n per point: see the table); red: quality budget")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
