"""End-to-end scenarios on top of :mod:`saraikit.pipeline`: utterance sets, summaries, thread budget.

Everything here runs real utterances through a :class:`~saraikit.pipeline.PipelineRunner`
(the loaded stack in a worker process) and turns the rows into tables,
stored trials and KPI rows.

Decisions:
- Utterances are picked by duration (default 2-4 s, the issue's range) from
  both languages, deterministically (``datasets.filter`` takes evenly spaced
  clips).
- The *cold* figure is the first utterance served by a freshly loaded worker
  with no warm-up, plus the stack's load time; *warm* figures come after one
  warm-up pass of every stage.
- Thread budget: each split (ONNX Runtime intra-op threads, CTranslate2
  threads, llama.cpp threads) gets a fresh worker and the same utterances; the
  best split is the lowest median voice-to-voice time to first audio, and the
  splits not significantly slower than it are named.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from saraikit.core import spread, stats
from saraikit.core.verdict import goal_sentence
from saraikit.data import datasets
from saraikit.data.audio import read_audio
from saraikit.engines.pipeline import PipelineRunner, apply_threads
from saraikit.core.progress import progress
from saraikit.core.store import Figure, Trial

TIMING_COLUMNS = ("vad_ms", "stt_ms", "llm_ttft_ms", "first_sentence_ms", "first_audio_ms", "ttfa_ms",
                  "last_audio_ms_from_eos", "audio_path_ms", "projected_ttfa_ms")


def pick_utterances(per_language: int = 10, min_s: float = 2.0, max_s: float = 4.0,
                    sets: tuple[str, ...] = ("librivox_en", "cards_en", "asterisk_es")) -> list[datasets.Clip]:
    """A deterministic mix of real utterances of 2-4 s in both languages.

    ``sets`` are built-in dataset names or paths to CSV/JSONL manifests
    (:func:`saraikit.data.datasets.load`): a user's own recordings.
    """
    built = {str(name): datasets.load(name) for name in sets}
    chosen: dict[str, list] = {}
    for name in map(str, sets):
        subset = datasets.filter(built[name], min_duration_s=min_s, max_duration_s=max_s)
        for clip in subset.clips:
            chosen.setdefault(clip.language, []).append(clip)
    picked = []
    for language, clips in chosen.items():
        step = max(1, len(clips) // per_language) if clips else 1
        picked += clips[::step][:per_language]
    return picked


def run_utterances(runner: PipelineRunner, clips: list[datasets.Clip], desc: str = "utterances",
                   keep_audio_for: int = 0, isolated: bool = True) -> pd.DataFrame:
    """One row per utterance (every status kept); the first ``keep_audio_for`` keep their answer audio.

    ``isolated`` also times each stage alone on the same input (for the projection).
    """
    rows = []
    for i, clip in enumerate(progress(clips, desc=desc)):
        row = runner.run(read_audio(clip.path), clip.language, keep_audio=i < keep_audio_for, isolated=isolated,
                         id=clip.id, reference=clip.reference, duration_s=clip.duration_s)
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(rows: pd.DataFrame, columns=TIMING_COLUMNS) -> pd.DataFrame:
    """P50 with CI and flagged tails for each timing, over the successful utterances."""
    ok = rows[rows["status"] == "ok"]
    out = []
    for column in columns:
        values = ok[column].dropna().astype(float).tolist() if column in ok else []
        if not values:
            continue
        s = stats.summarize(values)
        out.append({"timing": column, "n": s.n, "p50_ms": s.p50, "p50_ci_low": s.p50_ci_low,
                    "p50_ci_high": s.p50_ci_high, "p90": stats.format_percentile(s, "p90"),
                    "p99": stats.format_percentile(s, "p99"), "mean_ms": s.mean})
    return pd.DataFrame(out)


def status_counts(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.groupby(["status"]).agg(n=("status", "size"), example_reason=("reason", "first")).reset_index()


def stage_breakdown(rows: pd.DataFrame) -> pd.DataFrame:
    """Where the time to first audio goes, per utterance (ms), for a stacked bar plot."""
    ok = rows[rows["status"] == "ok"].copy()
    # early STT overlaps the endpoint wait: only the part of the wait it did not cover is left
    saved = ok["early_stt_saved_ms"].fillna(0.0) if "early_stt_saved_ms" in ok else 0.0
    parts = pd.DataFrame({
        "id": ok["id"], "language": ok["language"],
        "endpoint wait": ok["endpoint_ms"] - saved, "VAD": ok["vad_ms"],
        "STT": ok["llm_start_ms"] - ok["vad_ms"],  # STT plus the hand-off, as the user experiences it
        "LLM to first sentence": ok["first_sentence_ms"] - ok["llm_start_ms"],
        "TTS first sentence": ok["first_audio_ms"] - ok["first_sentence_ms"],
    })
    return parts


def dominant_stage(breakdown: pd.DataFrame) -> tuple[str, float]:
    """The stage with the largest median share of the time to first audio."""
    medians = breakdown.drop(columns=["id", "language"]).median()
    name = medians.idxmax()
    return name, float(medians[name] / medians.sum())


def projected_vs_measured(rows: pd.DataFrame) -> pd.DataFrame:
    """The sum of isolated stage medians (what the seeds 'validated') next to the measured figure."""
    ok = rows[rows["status"] == "ok"]
    iso = {k: float(ok[k].median()) for k in ("iso_vad_ms", "iso_stt_ms", "iso_llm_first_sentence_ms",
                                               "iso_tts_first_ms")}
    endpoint = float(ok["endpoint_ms"].median())
    projected = endpoint + sum(iso.values())
    measured = float(ok["ttfa_ms"].median())
    return pd.DataFrame([
        {"figure": "endpoint wait (VAD silence)", "ms": endpoint, "provenance": "configured"},
        *({"figure": f"median {k[4:-3]} alone", "ms": v, "provenance": "measured"} for k, v in iso.items()),
        {"figure": "projected time to first audio (sum of medians)", "ms": projected, "provenance": "derived"},
        {"figure": "measured time to first audio (median)", "ms": measured, "provenance": "measured"},
        {"figure": "gap (measured - projected)", "ms": measured - projected, "provenance": "derived"},
    ])


def utterance_trial(row: dict, experiment: str, config: dict) -> Trial:
    figures = [Figure(column, float(row[column]), "ms", n=1,
                      provenance="derived" if column == "projected_ttfa_ms" else "measured")
               for column in TIMING_COLUMNS
               if column in row and row[column] is not None and not pd.isna(row[column])]
    return Trial(experiment=experiment, config={**config, "utterance": row.get("id")},
                 status="ok" if row.get("status") == "ok" else "failed",
                 error=None if row.get("status") == "ok" else f"{row.get('status')}: {row.get('reason')}",
                 method={"language": row.get("language"), "first_after_load": row.get("first_after_load")},
                 figures=figures)


def load_trial(load_info: dict, stack_name: str) -> Trial:
    """The stack's load time per stage and its memory once loaded, as one stored trial."""
    memory = load_info["memory"]
    gguf = memory.get("gguf_mapping") or {}
    figures = [Figure(f"load_s_{stage}", seconds, "s", n=1) for stage, seconds in load_info["load_s"].items()]
    figures += [Figure("stack_load_wall_s", load_info["load_wall_s"], "s", n=1),
                Figure("stack_rss", memory["rss_bytes"], "bytes", n=1),
                Figure("stack_pss", memory.get("pss_bytes"), "bytes", n=1),
                Figure("gguf_resident", gguf.get("rss_bytes"), "bytes", n=1)]
    return Trial(experiment="e2e_load", config={"stack": stack_name}, figures=figures,
                 method={"memory": "psutil RSS/PSS after loading every stage in the worker process"})


@dataclass
class ThreadSplit:
    ort_threads: int
    ct2_threads: int
    llama_threads: int

    def as_dict(self) -> dict:
        return {"ort_threads": self.ort_threads, "ct2_threads": self.ct2_threads, "llama_threads": self.llama_threads}

    def label(self) -> str:
        return f"ORT {self.ort_threads} / CT2 {self.ct2_threads} / llama {self.llama_threads}"


def thread_splits(values=(1, 2)) -> list[ThreadSplit]:
    return [ThreadSplit(*combo) for combo in itertools.product(values, values, values)]


def thread_budget(stack: dict, clips: list[datasets.Clip], splits: list[ThreadSplit], max_tokens: int = 32,
                  store=None, run_id: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Voice-to-voice time to first audio for each thread split (fresh worker each)."""
    rows, samples = [], {}
    for split in progress(splits, desc="thread splits"):
        with PipelineRunner(apply_threads(stack, split.as_dict()), max_tokens=max_tokens) as runner:
            runner.start()
            result = run_utterances(runner, clips, desc=split.label(), isolated=False)
        ok = result[result["status"] == "ok"]
        values = ok["ttfa_ms"].astype(float).tolist()
        samples[split.label()] = values
        s = stats.summarize(values) if values else None
        rows.append({"split": split.label(), **split.as_dict(), "n": len(values),
                     "ttfa_p50_ms": s.p50 if s else np.nan, "ttfa_ci_low": s.p50_ci_low if s else np.nan,
                     "ttfa_ci_high": s.p50_ci_high if s else np.nan,
                     "failed": int((result["status"] != "ok").sum())})
        if store is not None and values:
            store.record(run_id, Trial(experiment="thread_budget", config=split.as_dict(), samples=values,
                                       figures=[Figure("ttfa_p50_ms", s.p50, "ms", n=s.n)],
                                       method={"utterances": [c.id for c in clips], "max_tokens": max_tokens}))
    table = pd.DataFrame(rows).sort_values("ttfa_p50_ms", ignore_index=True)
    if len(table) and not np.isnan(table.iloc[0]["ttfa_p50_ms"]):
        best = table.iloc[0]["split"]
        table["vs_best"] = [("best" if name == best else stats.compare(samples[best], samples[name]).verdict
                            if samples[name] else "no data") for name in table["split"]]
    return table, samples


def conclusion_lines(rows: pd.DataFrame, projected_ms: float, load_info: dict, cold_row: dict, budget: pd.DataFrame,
                     ttfa_goal_ms: float, audio_goal_ms: float) -> list[str]:
    """The notebook's conclusions, each sentence computed from the rows (judged by the one verdict rule)."""
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return ["- No utterance completed: " + "; ".join(f"{r.id}: {r.status} ({r.reason})" for r in rows.itertuples())]
    (ttfa_p50, ttfa_ci, ttfa_n, how), (audio_p50, audio_ci, audio_n, _) = (interval(ok, c) for c in ("ttfa_ms", "audio_path_ms"))
    ttfa, stt = (stats.summarize(ok[c].astype(float).tolist()) for c in ("ttfa_ms", "stt_ms"))
    ttft = ok["llm_ttft_ms"].dropna().astype(float)
    dominant, share = dominant_stage(stage_breakdown(rows))
    memory = load_info["memory"]
    gguf_mib = ((memory.get("gguf_mapping") or {}).get("rss_bytes") or 0) / 2**20
    best = budget.iloc[0]
    lines = [
        f"- Voice-to-voice time to first audio: P50 **{ttfa_p50:.0f} ms** (95% CI {ttfa_ci[0]:.0f}-{ttfa_ci[1]:.0f}, "
        f"n={ttfa_n}, {how}), P90 {stats.format_percentile(ttfa, 'p90')}; it "
        f"{goal_sentence(ttfa_p50, ttfa_ci[0], ttfa_ci[1], ttfa_goal_ms)}.",
        f"- Audio-only path (STT + TTS): P50 **{audio_p50:.0f} ms** (95% CI {audio_ci[0]:.0f}-{audio_ci[1]:.0f}, "
        f"n={audio_n}); it {goal_sentence(audio_p50, audio_ci[0], audio_ci[1], audio_goal_ms)}.",
        f"- The dominant stage is **{dominant}** ({share:.0%} of the median time to first audio); STT P50 "
        f"{stt.p50:.0f} ms, LLM time to first token P50 {ttft.median():.0f} ms (n={len(ttft)}).",
        f"- Projected (sum of isolated medians, derived) {projected_ms:.0f} ms vs measured {ttfa.p50:.0f} ms: gap "
        f"{ttfa.p50 - projected_ms:+.0f} ms. " + (
            "The pipeline is slower than the sum of its parts: the LLM and TTS compete for the same cores, and "
            "hand-offs cost time." if ttfa.p50 > projected_ms else
            "The measured median is below the projection: a median of sums is not a sum of medians; neither figure "
            "should be read without the other."),
        f"- Cold start: the stack loads in {load_info['load_wall_s']:.1f} s and the first, unwarmed utterance took "
        f"{cold_row.get('ttfa_ms', float('nan')):.0f} ms to first audio (n=1).",
        f"- Memory: RSS {memory['rss_bytes'] / 2**20:.0f} MiB of which {gguf_mib:.0f} MiB is the mapped GGUF; "
        f"PSS {(memory.get('pss_bytes') or 0) / 2**20:.0f} MiB.",
        f"- Best thread split: **{best['split']}** (P50 {best['ttfa_p50_ms']:.0f} ms over {int(best['n'])} utterances); "
        f"{int((budget.get('vs_best', pd.Series(dtype=str)) != 'slower').sum())} of {len(budget)} splits are not "
        "significantly slower.",
    ]
    failed = rows[rows["status"] != "ok"]
    if len(failed):
        lines.append(f"- {len(failed)} utterance(s) did not complete: "
                     + "; ".join(f"{r.id}: {r.status} ({r.reason})" for r in failed.itertuples()))
    return lines


def interval(rows: pd.DataFrame, column: str) -> tuple[float, tuple[float, float], int, str]:
    """P50, its CI, n and how the CI was made: over processes when the rows name several, else within one."""
    frame = rows.dropna(subset=[column])
    if "process" in frame and frame["process"].nunique() > 1:
        processes = [spread.ProcessSamples(tuple(g[column].astype(float)), i + 1)
                     for i, (_, g) in enumerate(frame.groupby("process"))]
        s = spread.summarize_processes(processes)
        return s.median, (s.ci_low, s.ci_high), s.n, f"hierarchical bootstrap over {s.k} worker processes"
    s = stats.summarize(frame[column].astype(float).tolist())
    return s.p50, (s.p50_ci_low, s.p50_ci_high), s.n, "bootstrap within one worker process"
