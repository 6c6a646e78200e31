"""Which voice speaks a language: every voice measured the same way, and the paired bootstrap decides.

Decisions:

- A voice is described by its round-trip WER (whisper-base listening, the
  project's normalizer) with its CI, its predicted MOS (DNSMOS P.808, not
  human MOS) with its CI, its time to first audio per sentence (P50 with CI),
  its real-time factor, its model size and the RSS its load added.
- A candidate *beats* the baseline (espeak-ng for the language) on
  intelligibility only when the paired bootstrap CI of ``WER(candidate) -
  WER(baseline)`` over the same sentences lies below zero.
- Among the voices that beat the baseline and whose first-audio P50 is within
  ``latency_budget_ms``, the one with the lowest WER wins (ties: lower time
  to first audio). When none qualifies, the baseline stays, and the lines
  say which condition each candidate missed and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from saraikit.core import stats
from saraikit.quality.stt_eval import SttScore, percent
from saraikit.quality.wer import paired_wer_difference

FIRST_AUDIO_GOAL_MS = 150.0  # issue goal: first-sentence time to first audio P50
WER_GOAL_PCT = 10.0  # upper CI bound of the chosen voice's round-trip WER
MOS_GOAL = 3.5


def voice_table(synthesized: pd.DataFrame, trips: dict[str, SttScore], mos_table: pd.DataFrame,
                sizes_mb: dict[str, float | None]) -> pd.DataFrame:
    """One row per voice: WER with CI, predicted MOS with CI, first audio P50 with CI, RTF, size, load RSS."""
    mos = mos_table.set_index("group") if len(mos_table) else pd.DataFrame()
    rows = []
    for label, group in synthesized.groupby("voice", sort=False):
        first = stats.summarize(group["first_audio_ms"].astype(float).tolist())
        report = trips[label].report if label in trips else None
        m = mos.loc[label] if label in mos.index else None
        rows.append({
            "voice": label, "language": group["language"].iloc[0], "sentences": len(group),
            "wer_%": percent(report.wer) if report else np.nan,
            "wer_ci_low": percent(report.wer_ci.low) if report else np.nan,
            "wer_ci_high": percent(report.wer_ci.high) if report else np.nan,
            "p808_mos": m["p808_mos"] if m is not None else np.nan,
            "mos_ci_low": m["p808_mos_ci_low"] if m is not None else np.nan,
            "mos_ci_high": m["p808_mos_ci_high"] if m is not None else np.nan,
            "first_audio_p50_ms": first.p50, "first_audio_ci_low": first.p50_ci_low,
            "first_audio_ci_high": first.p50_ci_high, "rtf_p50": float(group["rtf"].median()),
            "model_mb": sizes_mb.get(label), "load_rss_mib": float(group["load_rss_mib"].iloc[0]),
        })
    return pd.DataFrame(rows)


@dataclass
class VoiceChoice:
    language: str
    winner: str
    baseline: str
    lines: list[str]
    paired: pd.DataFrame  # candidate vs baseline: diff in points with CI


def choose(table: pd.DataFrame, trips: dict[str, SttScore], language: str, baseline: str,
           latency_budget_ms: float = FIRST_AUDIO_GOAL_MS) -> VoiceChoice:
    """The voice for ``language`` by the rule of the module docstring, with the evidence as sentences."""
    mine = table[table["language"] == language].set_index("voice")
    if baseline not in mine.index or baseline not in trips:
        raise ValueError(f"voice choice for {language}: the baseline {baseline!r} was not measured")
    paired, lines, qualified = [], [], []
    for label, row in mine.drop(index=baseline).iterrows():
        if label not in trips:
            continue
        d = paired_wer_difference(trips[baseline].report, trips[label].report)
        beats = d.ci_high < 0
        fast = row["first_audio_p50_ms"] <= latency_budget_ms
        paired.append({"voice": label, "vs": baseline, "diff_points": percent(d.diff), "ci_low": percent(d.ci_low),
                       "ci_high": percent(d.ci_high), "beats_baseline": beats,
                       "first_audio_p50_ms": row["first_audio_p50_ms"], "within_latency_budget": fast})
        if beats and fast:
            qualified.append((row["wer_%"], row["first_audio_p50_ms"], label))
        else:
            missed = []
            if not beats:
                missed.append(f"its WER is not lower than {baseline}'s (paired diff {percent(d.diff):+.1f} points, "
                              f"95% CI {percent(d.ci_low):+.1f} to {percent(d.ci_high):+.1f})")
            if not fast:
                missed.append(f"its first audio P50 {row['first_audio_p50_ms']:.0f} ms is "
                              f"{row['first_audio_p50_ms'] - latency_budget_ms:.0f} ms over the {latency_budget_ms:.0f} ms budget")
            lines.append(f"- {label}: not chosen: " + "; ".join(missed) + ".")
    winner = min(qualified)[2] if qualified else baseline
    w = mine.loc[winner]
    head = (f"- **{language}: {winner}** speaks (round-trip WER {w['wer_%']:.1f}%, 95% CI {w['wer_ci_low']:.1f}-"
            f"{w['wer_ci_high']:.1f}; predicted MOS {w['p808_mos']:.2f}; first audio P50 {w['first_audio_p50_ms']:.0f} ms, "
            f"n={int(w['sentences'])} sentences)")
    head += (": it beats the baseline on the paired bootstrap and keeps the latency budget." if winner != baseline else
             ": no candidate beat it on intelligibility within the latency budget, so the baseline stays.")
    goals = [f"WER upper CI {w['wer_ci_high']:.1f}% vs {WER_GOAL_PCT:g}%: "
             f"{'met' if w['wer_ci_high'] <= WER_GOAL_PCT else 'missed by ' + format(w['wer_ci_high'] - WER_GOAL_PCT, '.1f') + ' points'}",
             f"predicted MOS {w['p808_mos']:.2f} vs {MOS_GOAL}: "
             f"{'met' if w['p808_mos'] >= MOS_GOAL else 'missed by ' + format(MOS_GOAL - w['p808_mos'], '.2f')}",
             f"first audio P50 {w['first_audio_p50_ms']:.0f} ms vs {FIRST_AUDIO_GOAL_MS:g} ms: "
             f"{'met' if w['first_audio_p50_ms'] <= FIRST_AUDIO_GOAL_MS else 'missed by ' + format(w['first_audio_p50_ms'] - FIRST_AUDIO_GOAL_MS, '.0f') + ' ms'}"]
    lines = [head, f"  - goals of the chosen voice: {'; '.join(goals)}."] + lines
    return VoiceChoice(language, winner, baseline, lines, pd.DataFrame(paired))


def best_intelligibility(table: pd.DataFrame, language: str) -> str | None:
    """The voice of ``language`` with the lowest round-trip WER (the quality-first choice), or None."""
    mine = table[(table["language"] == language)].dropna(subset=["wer_%"])
    return None if mine.empty else mine.sort_values(["wer_%", "first_audio_p50_ms"]).iloc[0]["voice"]
