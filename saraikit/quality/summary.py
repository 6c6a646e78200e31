"""The conclusions of a quality run (notebook 06), as markdown lines computed from its tables.

Decisions:

- Figures are written with :func:`saraikit.core.stats.format_value` and
  :func:`saraikit.core.stats.format_interval`; every rate says its n.
- A figure with a target (``targets``: the KPI targets, keyed ``wer``,
  ``tts_intelligibility_wer``, ``predicted_mos``) is judged by
  :func:`saraikit.core.verdict.goal_sentence` on its 95% CI; a KPI without a
  target in ``targets`` is not judged. The lowest point estimate of a
  dataset is named, and a tie is said to be one.
- Noise: per (system, set) the clean WER, the worst condition with its CI,
  and the highest SNR at which each noise is significantly worse than clean
  (paired CI against the same clips clean).
- A quick run says so in the first line, from the ``quick`` parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from saraikit.core.stats import format_interval, format_value
from saraikit.core.verdict import goal_sentence
from saraikit.quality.tts_eval import MOS_LABEL

CONFIDENCE = 0.95
QUICK_NOTE = " (quick run: small samples; do not act on these figures)"


@dataclass
class QualityResults:
    """The tables notebook 06 shows, the inputs of its conclusions."""

    wer_table: pd.DataFrame  # AccuracyRun.table()
    paired: pd.DataFrame  # tables.paired_table
    noise_table: pd.DataFrame  # NoiseRun.table, clean rows included
    noise_onsets: pd.DataFrame  # NoiseRun.first_significant()
    trip_table: pd.DataFrame  # tables.round_trip_table
    mos_table: pd.DataFrame  # tts_eval.mos_summary
    ratings_message: str  # tts_eval.collect_ratings
    bad_dropped: int  # clips the dataset loader dropped from the bad-input manifest
    bad_skipped: pd.DataFrame  # SttScore.skipped() of the bad-input run


def rate_text(value, low, high, n, unit: str = "%", what: str = "") -> str:
    """``"12.3% (95% CI 10.1 to 14.6, n=60)"``; ``what`` names what n counts (``"sentences"``)."""
    count = f"n={int(n)}" + (f" {what}" if what else "")
    if pd.isna(low) or pd.isna(high):
        return f"{format_value(value)}{unit} (no CI, {count})"
    return f"{format_value(value)}{unit} ({format_interval(value, low, high, CONFIDENCE)}, {count})"


def _row_rate(row, value: str = "wer_%", low: str = "wer_ci_low", high: str = "wer_ci_high") -> str:
    return rate_text(row[value], row[low], row[high], row["n_utterances"])


def header_line(target: str, run_id: str, quick: bool) -> str:
    return (f"Hardware target **{target}**, run `{run_id}`{QUICK_NOTE if quick else ''}. "
            "WER/CER are corpus rates on normalized text, greedy decoding.")


def _goal_line(rows: pd.DataFrame, target: float | None, name: str = "system") -> list[str]:
    if target is None or rows.empty:
        return []
    verdicts = "; ".join(
        f"{r[name]} {goal_sentence(r['wer_%'], r['wer_ci_low'], r['wer_ci_high'], target, 'lower', '%')}"
        for _, r in rows.iterrows())
    return [f"  - against the WER target: {verdicts}."]


def accuracy_lines(wer_table: pd.DataFrame, wer_target: float | None = None) -> list[str]:
    """Per dataset: every system's WER with its CI, the lowest point estimate, the raw-WER range, the goal."""
    lines = []
    for dataset, rows in wer_table.groupby("dataset", sort=False):
        lowest = rows[rows["wer_%"] == rows["wer_%"].min()]
        parts = "; ".join(f"{r['system']} {_row_rate(r)}" for _, r in rows.iterrows())
        raw = sorted({f"{format_value(v)}%" for v in (rows["wer_raw_%"].min(), rows["wer_raw_%"].max())})
        lines.append(f"- **{dataset}** WER: {parts}. Lowest point estimate: {', '.join(lowest['system'])}"
                     f"{' (tied)' if len(lowest) > 1 else ''}; raw WER of the same transcripts {' to '.join(raw)} "
                     "(case, punctuation, digits and accents counted as errors).")
        lines += _goal_line(rows, wer_target)
    return lines


def paired_lines(paired: pd.DataFrame) -> list[str]:
    """One line per paired comparison: the difference in points with its CI and whether it is significant."""
    lines = []
    for row in paired.itertuples():
        verdict = (f"{'more' if row.diff_points > 0 else 'fewer'} errors, significant" if row.significant
                   else "no significant difference")
        diff = f"{'+' if row.diff_points > 0 else ''}{format_value(row.diff_points)}"
        lines.append(f"- {row.candidate} vs {row.baseline} on {row.dataset}: {diff} points "
                     f"({format_interval(row.diff_points, row.ci_low, row.ci_high, CONFIDENCE)}, "
                     f"n={row.n_utterances}): {verdict}; identical transcripts on {row.identical_transcripts} "
                     f"of {row.n_utterances} utterances.")
    return lines


def _onset_text(onsets: pd.DataFrame, label: str, name: str) -> str:
    if onsets.empty:
        return "no paired comparison with clean"
    mine = onsets[(onsets["system"] == label) & (onsets["set"] == name)]
    return "; ".join(f"{r['noise']} significantly worse than clean from {r['highest_snr_worse_than_clean']:g} dB down"
                     if pd.notna(r["highest_snr_worse_than_clean"]) else f"{r['noise']} never significantly worse"
                     for _, r in mine.iterrows())


def noise_lines(noise_table: pd.DataFrame, onsets: pd.DataFrame) -> list[str]:
    """Per (system, set): clean WER, the worst noisy condition, where each noise starts to hurt; runaway loops."""
    noisy = noise_table[noise_table["noise"] != "clean"]
    lines = []
    for (label, name), rows in noisy.groupby(["system", "set"], sort=False):
        clean = noise_table[(noise_table["system"] == label) & (noise_table["set"] == name)
                            & (noise_table["noise"] == "clean")]
        worst = rows.sort_values("wer_%").iloc[-1]
        clean_text = f"clean {format_value(clean['wer_%'].iloc[0])}%" if len(clean) else "clean not measured"
        lines.append(f"- Noise, {label} on {name} (n={int(worst['n_utterances'])}): {clean_text}; worst "
                     f"{worst['noise']} at {worst['snr_db']:g} dB: {_row_rate(worst)}; "
                     f"{_onset_text(onsets, label, name)} (paired CI vs the same clips clean).")
    return lines + runaway_lines(noisy)


def runaway_lines(noisy: pd.DataFrame) -> list[str]:
    """A line when noisy transcripts hold more inserted words than their reference has words."""
    runaways = int(noisy["runaway_utterances"].sum()) if len(noisy) else 0
    if not runaways:
        return []
    return [f"- {runaways} of {int(noisy['n_utterances'].sum())} noisy transcripts hold more inserted words than "
            "their reference has words (Whisper repeating itself, e.g. the same word over and over); greedy decoding "
            "without temperature fallback does not stop such loops, and they dominate the corpus WER at low SNR."]


def tts_lines(trip_table: pd.DataFrame, mos_table: pd.DataFrame, listener: str,
              trip_target: float | None = None, mos_target: float | None = None) -> list[str]:
    """Round-trip WER per voice and predicted MOS per group, each against its target when one is given.

    Only the voices are judged; the real recordings scored beside them are a reference point, not a candidate."""
    lines, voices = [], set(trip_table["voice"]) if len(trip_table) else set()
    for _, row in trip_table.iterrows():
        goal = (f"; {goal_sentence(row['wer_%'], row['ci_low'], row['ci_high'], trip_target, 'lower', '%')}"
                if trip_target is not None else "")
        lines.append(f"- TTS round trip ({listener} listening), {row['voice']}: WER "
                     f"{rate_text(row['wer_%'], row['ci_low'], row['ci_high'], row['sentences'], what='sentences')}"
                     f"{goal}.")
    for row in mos_table.itertuples():
        goal = (f"; {goal_sentence(row.p808_mos, row.p808_mos_ci_low, row.p808_mos_ci_high, mos_target, 'higher', '')}"
                if mos_target is not None and row.group in voices and not math.isnan(row.p808_mos) else "")
        p808 = rate_text(row.p808_mos, row.p808_mos_ci_low, row.p808_mos_ci_high, row.n_clips, "", "clips")
        lines.append(f"- {MOS_LABEL}, {row.group}: P.808 {p808}, OVRL {format_value(row.ovrl)}{goal}.")
    return lines


def bad_input_line(n_dropped: int, skipped: pd.DataFrame) -> str:
    reasons = ", ".join(sorted(set(skipped["reason"]))) if len(skipped) else "none"
    return (f"- Bad input: {n_dropped} dropped by the dataset loader and {len(skipped)} skipped by the scorer, "
            f"each with its reason ({reasons}).")


def conclusion_lines(results: QualityResults, target: str, run_id: str, quick: bool, listener: str,
                     targets: Mapping[str, float] | None = None) -> list[str]:
    """Every conclusion line of the run, in the order the notebook shows its sections."""
    targets = targets or {}
    lines = [header_line(target, run_id, quick)]
    lines += accuracy_lines(results.wer_table, targets.get("wer"))
    lines += paired_lines(results.paired)
    lines += noise_lines(results.noise_table, results.noise_onsets)
    lines += tts_lines(results.trip_table, results.mos_table, listener, targets.get("tts_intelligibility_wer"),
                       targets.get("predicted_mos"))
    lines.append(f"- Human MOS: {results.ratings_message}.")
    lines.append(bad_input_line(results.bad_dropped, results.bad_skipped))
    return lines
