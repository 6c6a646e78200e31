"""What 07_stack_search shows and concludes: levers, the Pareto front, the winner, the confirmation run.

Decisions:

- The winner of a language is the candidate with the lowest TTFA P50 among
  those that reached the last rung (their STT option was already inside the
  quality budget, see :mod:`.screen`).
- The best stack is confirmed like 05 measures a stack: its own pipeline in
  ``processes`` fresh worker processes over the language's utterances, rows
  tagged with their process, so the KPI's CI spans processes
  (:func:`saraikit.report.e2e_records.interval`).
- A goal is passed only when the upper CI bound is at or below it
  (:func:`saraikit.core.verdict.judge_or_not`); a miss says by how much and
  which stage holds the largest share of the median time.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from saraikit.core import spread
from saraikit.core.verdict import judge_or_not
from saraikit.engines.pipeline import PipelineRunner
from saraikit.experiments import e2e
from saraikit.experiments.stacksearch.candidates import MOONSHINE, MOONSHINE_SHIPPED, REFERENCE_STT, Candidate
from saraikit.experiments.stacksearch.halving import HalvingResult
from saraikit.experiments.stacksearch.screen import lever_ratio


def stt_levers(screen_rows: pd.DataFrame, language: str, encoder: str, margin: int) -> pd.DataFrame:
    """Each STT lever on its own, as an STT-time ratio paired by round (< 1: the lever saves time).

    The trimmed options compared are those with the engine's default minimum window.
    """
    pairs = [("trimmed vs full window (FP32)", REFERENCE_STT, f"whisper-onnx fp32 +{margin}"),
             (f"{encoder.upper()} vs FP32 encoder (+{margin})", f"whisper-onnx fp32 +{margin}",
              f"whisper-onnx {encoder} +{margin}"),
             ("language given vs detected (faster-whisper)", "faster-whisper int8 (language detected)",
              "faster-whisper int8 (language given)"),
             ("ONNX trimmed vs faster-whisper", "faster-whisper int8 (language given)", f"whisper-onnx {encoder} +{margin}"),
             ("Moonshine: ONNX graph vs .ort as shipped", MOONSHINE_SHIPPED, MOONSHINE)]
    if language != "en":  # Moonshine is English only
        pairs = [pair for pair in pairs if MOONSHINE not in pair]
    return pd.DataFrame([_lever_row(language, name, lever_ratio(screen_rows, base, cand), base, cand)
                         for name, base, cand in pairs])


def _lever_row(language: str, name: str, comparison, base: str, cand: str) -> dict:
    if comparison is None:
        return {"language": language, "lever": name, "baseline": base, "candidate": cand, "ratio": np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "rounds": 0, "verdict": "not measured in >= 2 common rounds"}
    return {"language": language, "lever": name, "baseline": base, "candidate": cand, "ratio": comparison.ratio,
            "ci_low": comparison.ci_low, "ci_high": comparison.ci_high, "rounds": comparison.k,
            "verdict": comparison.verdict}


def pipeline_lever(result: HalvingResult, language: str, name: str, off: str, on: str) -> dict:
    """TTFA with a pipeline option on / off for the same STT, voice and threads, paired by rung.

    ``off`` and ``on`` are the label parts that differ (``"late STT"`` / ``"early STT"``).
    """
    labels = set(result.ranking["label"])
    for base_label in sorted(label for label in labels if off in label):
        twin = base_label.replace(off, on)
        if twin not in labels:
            continue
        base, cand = _processes(result, base_label), _processes(result, twin)
        common = sorted({p.round for p in base} & {p.round for p in cand})
        if len(common) >= 2:
            comparison = spread.compare_paired([p for p in base if p.round in common],
                                               [p for p in cand if p.round in common])
            return _lever_row(language, name, comparison, base_label, twin)
    return _lever_row(language, name, None, off, on)


def pipeline_levers(result: HalvingResult, language: str) -> list[dict]:
    return [pipeline_lever(result, language, "early vs late STT (TTFA)", "late STT", "early STT"),
            pipeline_lever(result, language, "first clause vs first sentence to TTS (TTFA)", "first sentence",
                           "first clause"),
            pipeline_lever(result, language, "first words vs first clause to TTS (TTFA)", "first clause",
                           "first words")]


def _processes(result: HalvingResult, label: str) -> list[spread.ProcessSamples]:
    rows = result.rows[(result.rows["candidate"] == label) & (result.rows["status"] == "ok")]
    return [spread.ProcessSamples(tuple(g["ttfa_ms"].astype(float)), int(r) + 1) for r, g in rows.groupby("rung")]


def winner(result: HalvingResult, candidates: list[Candidate]) -> Candidate | None:
    finished = result.ranking[result.ranking["rungs"] == result.ranking["rungs"].max()].dropna(subset=["ttfa_p50_ms"])
    if finished.empty:
        return None
    label = finished.sort_values("ttfa_p50_ms").iloc[0]["label"]
    return next(c for c in candidates if c.label == label)


def pareto_figure(screen_tables: dict[str, pd.DataFrame], rankings: dict[str, pd.DataFrame], target: str):
    """STT P50 (screen) and pipeline TTFA P50 (search) against WER, per language; the budget set marked."""
    fig, axes = plt.subplots(1, len(screen_tables), figsize=(6 * len(screen_tables), 4.2), squeeze=False)
    for ax, (language, table) in zip(axes[0], screen_tables.items()):
        ranking = rankings.get(language)
        wer_of = table.set_index("option")["wer_pct"]
        for inside, marker in ((True, "o"), (False, "x")):
            part = table[table["within_budget"] == inside]
            ax.scatter(part["wer_pct"], part["stt_p50_ms"], marker=marker,
                       label=f"STT alone ({'within' if inside else 'outside'} budget)")
        if ranking is not None and len(ranking):
            ax.scatter(ranking["stt"].map(wer_of), ranking["ttfa_p50_ms"], marker="s", alpha=0.6,
                       label="whole stack: TTFA P50")
        ax.axhline(500, color="red", linestyle="--", linewidth=1, label="500 ms goal")
        ax.set_xlabel("WER % (normalized) on the search utterances")
        ax.set_ylabel("P50 ms")
        ax.set_title(f"{language}: latency against WER ({target})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def confirm(stack: dict, clips: list, processes: int = 2, max_tokens: int = 32) -> tuple[pd.DataFrame, dict]:
    """The best stack over ``clips`` in ``processes`` fresh workers; rows carry ``process``; load info of the first."""
    frames, load_info = [], None
    for process in range(processes):
        with PipelineRunner(stack, max_tokens=max_tokens) as runner:
            info = runner.start(warm=True)
            load_info = load_info or info
            frames.append(e2e.run_utterances(runner, clips, desc=f"best stack, process {process + 1}",
                                             isolated=False).assign(process=process))
    return pd.concat(frames, ignore_index=True), load_info


def goal_lines(rows: pd.DataFrame, goals: dict[str, float]) -> list[str]:
    """Per language and goal: the figure, its CI, the verdict, and when missed by how much and where the time goes."""
    lines = []
    ok = rows[rows["status"] == "ok"]
    for language, part in ok.groupby("language"):
        for column, goal in goals.items():
            value, (low, high), n, how = e2e.interval(part, column)
            verdict = judge_or_not(value, low, high, goal)
            line = (f"- **{language}**, {column.replace('_ms', '')} P50 {value:.0f} ms (95% CI {low:.0f}-{high:.0f}, "
                    f"n={n}, {how}) against {goal:.0f} ms: **{verdict}**")
            if verdict != "pass":
                breakdown = e2e.stage_breakdown(part)
                stage, share = e2e.dominant_stage(breakdown)
                line += (f"; the median is {value - goal:+.0f} ms ({value / goal:.2f}x) from the goal, "
                         f"and {stage} holds {share:.0%} of it")
            lines.append(line + ".")
    return lines
