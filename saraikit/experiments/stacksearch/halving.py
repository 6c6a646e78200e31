"""The pipeline rungs of the stack search: successive halving on voice-to-voice time to first audio.

Each rung runs every surviving candidate in a fresh pipeline worker process
(:class:`saraikit.engines.pipeline.PipelineRunner`: load, warm up once, then
the rung's utterances), ranks the candidates by the median TTFA of all their
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
from dataclasses import dataclass

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


def run_rung(candidate: Candidate, base_stack: dict, clips: list, max_tokens: int, timeout_s: float) -> list[dict]:
    """One candidate on ``clips`` in a fresh pipeline worker; one row per utterance, always."""
    try:
        runner = PipelineRunner(candidate.stack(base_stack), max_tokens=max_tokens, utterance_timeout_s=timeout_s)
        runner.start(warm=True)
    except SaraikitError as exc:  # a bad stage (caught before loading) or a stack that fails to load
        return [{"id": c.id, "language": c.language, "status": "load failed", "reason": str(exc)[:300]} for c in clips]
    try:
        rows = [runner.run(read_audio(c.path), c.language, id=c.id, isolated=False) for c in clips]
    finally:
        runner.close()
    return [{k: row.get(k) for k in ROW_COLUMNS} for row in rows]


def _trial(candidate: Candidate, rung: int, clips: list, rows: list[dict] | None = None) -> Trial:
    ok = [r["ttfa_ms"] for r in rows or [] if r.get("status") == "ok"]
    return Trial(experiment=EXPERIMENT, config={**candidate.config(), "rung": rung, "utterances": [c.id for c in clips]},
                 config_key=f"{candidate.label} | rung {rung} | {len(clips)} utterances",
                 status="ok" if ok else "failed",
                 error=None if ok else "; ".join(sorted({f"{r['status']}: {r.get('reason') or ''}" for r in rows or []}))[:500],
                 method={"rows": rows or [], "how": "PipelineRunner, warm, isolated=False; TTFA from end of speech"},
                 samples=ok)


def _measure(candidate, rung, clips, base_stack, max_tokens, timeout_s, store, run_id, reuse) -> list[dict]:
    wanted = _trial(candidate, rung, clips)
    if store is not None and reuse == "matching":
        found = store.find_reusable(run_id, wanted)
        if found is not None:
            method = json.loads(found["method"] or "{}")
            store.record_reused(run_id, found, _trial(candidate, rung, clips, method.get("rows", [])))
            return method.get("rows", [])
    rows = run_rung(candidate, base_stack, clips, max_tokens, timeout_s)
    if store is not None:
        store.record(run_id, _trial(candidate, rung, clips, rows))
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
        for candidate in survivors:
            rows = _measure(candidate, rung, subset, base_stack, max_tokens, timeout_s, store, run_id, reuse)
            frames.append(pd.DataFrame(rows).assign(candidate=candidate.label, rung=rung))
            if progress:
                progress(candidate.label, rung)
        ranking = _ranking(pd.concat(frames, ignore_index=True), candidates)
        alive = ranking.dropna(subset=["ttfa_p50_ms"])
        alive = alive[alive["label"].isin([c.label for c in survivors])]
        if rung < len(rung_sizes) - 1:
            keep = max(1, math.ceil(len(alive) / eta))
            labels = list(alive["label"][:keep])
            survivors = [c for c in survivors if c.label in labels]
    rows = pd.concat(frames, ignore_index=True)
    return HalvingResult(rows, _ranking(rows, candidates))


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
