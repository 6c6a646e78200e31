"""The pipeline rungs of the stack search: successive halving on voice-to-voice time to first audio.

Each rung runs every surviving candidate in a fresh pipeline worker process
(:class:`saraikit.engines.pipeline.PipelineRunner`: load, warm up once, then
the rung's utterances; candidates that share a stack and differ only in
pipeline options, such as early STT, share the worker and alternate per
utterance, which saves a model load per option and pairs them), ranks the candidates by the median TTFA of all their
rows so far and keeps the best ``1/eta`` for the next rung, which uses more
utterances. The rung is the unit of replication: a finalist has one process
per rung, and its P50 CI is the hierarchical bootstrap over those processes
(:func:`saraikit.core.spread.summarize_processes`).

Decisions:

- A candidate that fails to load, or whose every utterance fails, keeps its
  rows (status and reason) and leaves the search; the others go on.
- Every (candidate, rung) is one stored trial (experiment ``stack_search``)
  with the TTFA samples and the rows, written as soon as the rung ends: a
  killed search keeps every finished rung. With ``reuse="matching"`` a rung
  whose identity matches a finished trial of an earlier run is reused (a new
  row naming the original), which is how a killed search resumes; the default
  ``"none"`` measures again.
- Utterances are taken in a fixed order, so rung ``r`` is a superset of the
  earlier rungs' utterances only in count; candidates of one rung all see the
  same utterances, in the same order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from saraikit.core import spread
from saraikit.core.errors import ConfigError, SaraikitError
from saraikit.core.store import ResultsStore, Trial
from saraikit.data.audio import read_audio
from saraikit.engines.pipeline import PipelineRunner
from saraikit.experiments.stacksearch.candidates import Candidate

EXPERIMENT = "stack_search"
ROW_COLUMNS = ("id", "language", "status", "reason", "transcript", "stt_ms", "llm_ttft_ms", "first_audio_ms",
               "ttfa_ms", "audio_path_ms", "early_stt_saved_ms", "early_stt_wasted_ms", "endpoint_ms")


def run_group(group: list[Candidate], base_stack: dict, clips: list, max_tokens: int,
              timeout_s: float) -> dict[str, list[dict]]:
    """Candidates that share one stack (they differ only in pipeline options) in one fresh worker.

    Each utterance runs once per candidate, the candidates' order rotating
    from one utterance to the next, so they are paired within the process.
    Returns candidate label -> one row per utterance, always.
    """
    rows: dict[str, list[dict]] = {c.label: [] for c in group}
    try:
        runner = PipelineRunner(group[0].stack(base_stack), max_tokens=max_tokens, utterance_timeout_s=timeout_s)
        runner.start(warm=True)
    except SaraikitError as exc:  # a bad stage (caught before loading) or a stack that fails to load
        failed = [{"id": c.id, "language": c.language, "status": "load failed", "reason": str(exc)[:300]} for c in clips]
        return {c.label: list(failed) for c in group}
    try:
        for i, clip in enumerate(clips):
            audio = read_audio(clip.path)
            for candidate in group[i % len(group):] + group[:i % len(group)]:
                row = runner.run(audio, clip.language, id=clip.id, isolated=False, options=candidate.pipeline())
                rows[candidate.label].append({k: row.get(k) for k in ROW_COLUMNS})
    finally:
        runner.close()
    return rows


def _groups(candidates: list[Candidate]) -> list[list[Candidate]]:
    grouped: dict[tuple, list[Candidate]] = {}
    for c in candidates:
        grouped.setdefault(c.stack_key, []).append(c)
    return list(grouped.values())


def _trial(candidate: Candidate, rung: int, clips: list, rows: list[dict] | None = None) -> Trial:
    ok = [r["ttfa_ms"] for r in rows or [] if r.get("status") == "ok"]
    return Trial(experiment=EXPERIMENT, config={**candidate.config(), "rung": rung, "utterances": [c.id for c in clips]},
                 config_key=f"{candidate.label} | rung {rung} | {len(clips)} utterances",
                 status="ok" if ok else "failed",
                 error=None if ok else "; ".join(sorted({f"{r['status']}: {r.get('reason') or ''}" for r in rows or []}))[:500],
                 method={"rows": rows or [], "how": "PipelineRunner, warm, isolated=False; TTFA from end of speech"},
                 samples=ok)


def _measure(candidates, rung, clips, base_stack, max_tokens, timeout_s, store, run_id, reuse) -> dict[str, list[dict]]:
    """Rows per candidate label for one rung: reused from the store when asked and found, else measured."""
    rows, todo = {}, []
    for candidate in candidates:
        found = store.find_reusable(run_id, _trial(candidate, rung, clips)) if store is not None and reuse == "matching" else None
        if found is None:
            todo.append(candidate)
            continue
        rows[candidate.label] = json.loads(found["method"] or "{}").get("rows", [])
        store.record_reused(run_id, found, _trial(candidate, rung, clips, rows[candidate.label]))
    for group in _groups(todo):
        measured = run_group(group, base_stack, clips, max_tokens, timeout_s)
        for candidate in group:
            if store is not None:
                store.record(run_id, _trial(candidate, rung, clips, measured[candidate.label]))
            rows[candidate.label] = measured[candidate.label]
    return rows


@dataclass
class HalvingResult:
    rows: pd.DataFrame  # every utterance row, with candidate, rung
    ranking: pd.DataFrame  # one row per candidate: rungs reached, TTFA P50 with CI over rungs

    def summary(self, label: str) -> spread.SpreadSummary | None:
        return _spread(self.rows[self.rows["candidate"] == label])


def _spread(rows: pd.DataFrame) -> spread.SpreadSummary | None:
    ok = rows[rows["status"] == "ok"].dropna(subset=["ttfa_ms"])
    processes = [spread.ProcessSamples(tuple(g["ttfa_ms"]), int(r) + 1) for r, g in ok.groupby("rung") if len(g)]
    return spread.summarize_processes(processes) if processes else None


def successive_halving(candidates: list[Candidate], base_stack: dict, clips: list, rung_sizes=(3, 6, 12),
                       eta: int = 3, max_tokens: int = 32, timeout_s: float = 120.0, store: ResultsStore | None = None,
                       run_id: str | None = None, reuse: str = "none", progress=None) -> HalvingResult:
    """Successive halving over ``candidates`` (all of one language) on ``clips`` (see the module docstring)."""
    if reuse not in ("none", "matching"):
        raise ConfigError(f"reuse must be 'none' or 'matching', got {reuse!r}")
    if eta < 2 or not rung_sizes or any(n < 1 for n in rung_sizes):
        raise ConfigError(f"successive halving needs eta >= 2 and rung sizes >= 1, got eta={eta}, rungs={rung_sizes}")
    survivors, frames = list(candidates), []
    for rung, size in enumerate(rung_sizes):
        subset = [clips[i % len(clips)] for i in range(size)]
        measured = _measure(survivors, rung, subset, base_stack, max_tokens, timeout_s, store, run_id, reuse)
        for candidate in survivors:
            frames.append(pd.DataFrame(measured[candidate.label]).assign(candidate=candidate.label, rung=rung))
        if progress:
            progress(rung, len(survivors))
        ranking = _ranking(pd.concat(frames, ignore_index=True), candidates)
        alive = ranking.dropna(subset=["ttfa_p50_ms"])
        alive = alive[alive["label"].isin([c.label for c in survivors])]
        if rung < len(rung_sizes) - 1:
            keep = max(1, math.ceil(len(alive) / eta))
            labels = list(alive["label"][:keep])
            survivors = [c for c in survivors if c.label in labels]
    rows = pd.concat(frames, ignore_index=True)
    return HalvingResult(rows, _ranking(rows, candidates))


def interleaved(candidates: list[Candidate], base_stack: dict, clips: list, rounds: int = 3, max_tokens: int = 32,
                timeout_s: float = 120.0, store: ResultsStore | None = None, run_id: str | None = None,
                progress=None) -> HalvingResult:
    """Every candidate in every round, each in a fresh process, rounds interleaved: for paired lever ratios.

    The result's ``rung`` column holds the round, so the same summaries and
    :func:`saraikit.core.spread.compare_paired` apply.
    """
    frames = []
    for round_index in range(rounds):
        measured = _measure(candidates, 100 + round_index, clips, base_stack, max_tokens, timeout_s, store, run_id, "none")
        for candidate in candidates:
            frames.append(pd.DataFrame(measured[candidate.label]).assign(candidate=candidate.label, rung=round_index))
        if progress:
            progress(round_index, len(candidates))
    rows = pd.concat(frames, ignore_index=True)
    return HalvingResult(rows, _ranking(rows, candidates))


def lever_variants(winner: Candidate) -> list[Candidate]:
    """The winner and the winner with one pipeline lever flipped (early STT, first chunk).

    The first chunk is compared with the next longer one: words with the clause, a clause with the
    sentence, a sentence with the clause."""
    flipped_chunk = {"words": "clause", "clause": "sentence"}.get(winner.first_chunk, "clause")
    return [winner, replace(winner, early_stt=not winner.early_stt), replace(winner, first_chunk=flipped_chunk)]


def _ranking(rows: pd.DataFrame, candidates: list[Candidate]) -> pd.DataFrame:
    table = []
    for candidate in candidates:
        mine = rows[rows["candidate"] == candidate.label]
        if mine.empty:
            continue
        s = _spread(mine)
        ok = mine[mine["status"] == "ok"]
        table.append({
            "label": candidate.label, "language": candidate.language, "stt": candidate.stt.label,
            "tts": candidate.tts.label, "early_stt": candidate.early_stt, **dict(candidate.threads),
            "rungs": int(mine["rung"].max()) + 1, "n": len(ok), "failed": int((mine["status"] != "ok").sum()),
            "ttfa_p50_ms": s.median if s else np.nan, "ci_low": s.ci_low if s else np.nan,
            "ci_high": s.ci_high if s else np.nan, "processes": s.k if s else 0,
            "audio_path_p50_ms": float(ok["audio_path_ms"].astype(float).median()) if len(ok) else np.nan,
            "stt_p50_ms": float(ok["stt_ms"].astype(float).median()) if len(ok) else np.nan,
        })
    frame = pd.DataFrame(table)
    if frame.empty:
        return frame
    return frame.sort_values(["rungs", "ttfa_p50_ms"], ascending=[False, True], na_position="last").reset_index(drop=True)
