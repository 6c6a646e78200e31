"""The first rung of the stack search: every STT option on the same utterances, alone, in fresh processes.

Decisions:

- Rounds are interleaved like :func:`saraikit.experiments.bench.bench_interleaved`:
  round ``r`` runs every option once, each in its own freshly spawned process
  (load, one warm-up, then every utterance), so slow drift hits all options
  alike and a lever's ratio is paired by round
  (:func:`saraikit.core.spread.compare_paired`).
- Latency is the STT stage's own ``start -> end`` per utterance; the P50 CI is
  the hierarchical bootstrap over processes
  (:func:`saraikit.core.spread.summarize_processes`).
- Quality is scored on round 0's transcripts (greedy decoding: later rounds
  give the same words; a differing round is counted in ``unstable_texts``).
  WER against the references and against the full-window FP32 reference
  transcripts; the quality budget is the paired bootstrap CI of the WER
  increase over the reference option: inside when its upper bound is at most
  ``budget_points``.
- Voices enter the whole-stack search only when 06_quality measured their
  round-trip intelligibility within ``TTS_WER_BUDGET_PCT`` (upper CI bound;
  :func:`voice_gate`): quality is kept for the voice too, not only for STT.
- An option that crashes, hangs or raises becomes rows with its status and
  reason; looped and empty transcripts keep their own status. The search goes
  on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from saraikit.core import spread
from saraikit.core.trials import run_isolated
from saraikit.engines.build import build_stage
from saraikit.quality.wer import paired_wer_difference, wer_report
from saraikit.experiments.stacksearch.candidates import StageOption

BUDGET_POINTS = 2.0  # the largest WER increase (percentage points) a faster option may cost


def transcribe_in_process(spec: dict, items: list[tuple[str, np.ndarray]]) -> list[dict]:
    """Worker: build and load one STT stage, warm it once, transcribe every item (id, 16 kHz samples)."""
    stage = build_stage("stt", spec)
    load_s = stage.load()
    stage.warmup(1)
    rows = []
    for utterance_id, samples in items:
        result = stage.run(samples)
        value = result.value
        status = getattr(value, "status", None) or ("ok" if getattr(value, "text", "") else "empty transcript")
        rows.append({"id": utterance_id, "stt_ms": result.seconds() * 1000, "text": getattr(value, "text", ""),
                     "status": status, "reason": getattr(value, "reason", None) or "",
                     "language_detected": result.meta.get("language"), "load_s": load_s})
    return rows


def screen(options: list[StageOption], utterances: list, rounds: int = 2, timeout_s: float = 900.0,
           progress=None) -> pd.DataFrame:
    """Every option x round x utterance as one row (``option``, ``round``, ``id``, ``stt_ms``, ``text``, ``status``)."""
    items = [(u.id, u.samples) for u in utterances]
    rows = []
    for round_index in range(rounds):
        for option in options:
            trial = run_isolated(transcribe_in_process, option.spec, items, timeout_s=timeout_s)
            if trial.status == "ok":
                rows += [{"option": option.label, "round": round_index, **row} for row in trial.value]
            else:
                reason = (trial.error or "").strip().splitlines()[-1:] or [trial.status]
                rows += [{"option": option.label, "round": round_index, "id": i, "stt_ms": np.nan, "text": "",
                          "status": trial.status, "reason": reason[0]} for i, _ in items]
            if progress:
                progress(option.label, round_index, trial.status)
    return pd.DataFrame(rows)


@dataclass
class OptionScore:
    label: str
    latency: spread.SpreadSummary | None
    wer: object | None  # WerReport against the references
    agreement: object | None  # WerReport against the reference option's transcripts
    vs_reference: object | None  # PairedDifference of WER against the reference option
    statuses: dict

    @property
    def within_budget(self) -> bool:
        if self.vs_reference is None:
            return self.wer is not None  # the reference itself
        return bool(self.vs_reference.ci_high * 100 <= BUDGET_POINTS)


def _processes(frame: pd.DataFrame) -> list[spread.ProcessSamples]:
    ok = frame[frame["status"] == "ok"].dropna(subset=["stt_ms"])
    return [spread.ProcessSamples(tuple(g["stt_ms"]), int(r) + 1) for r, g in ok.groupby("round") if len(g)]


def score(rows: pd.DataFrame, utterances: list, language: str, reference: str) -> dict[str, OptionScore]:
    """Latency, WER and the budget verdict of every option of one language."""
    refs = {u.id: u.reference for u in utterances}
    first = rows[rows["round"] == rows["round"].min()]
    ref_texts = first[first["option"] == reference].set_index("id")["text"].to_dict()
    scores, ref_report = {}, None
    ordered = [reference] + [o for o in dict.fromkeys(rows["option"]) if o != reference]
    for label in ordered:
        mine = rows[rows["option"] == label]
        texts = first[first["option"] == label].set_index("id")
        processes = _processes(mine)
        ids = [i for i in refs if i in texts.index and texts.loc[i, "status"] != "crashed"]
        report = wer_report([refs[i] for i in ids], [texts.loc[i, "text"] for i in ids], ids, language) if ids else None
        agreement = None
        if ids and ref_texts:
            shared = [i for i in ids if ref_texts.get(i)]
            agreement = wer_report([ref_texts[i] for i in shared], [texts.loc[i, "text"] for i in shared], shared,
                                   language) if shared else None
        if label == reference:
            ref_report, versus = report, None
        else:
            versus = paired_wer_difference(ref_report, report) if report is not None and ref_report is not None else None
        scores[label] = OptionScore(label, spread.summarize_processes(processes) if processes else None, report,
                                    agreement, versus, mine["status"].value_counts().to_dict())
    return scores


def score_table(scores: dict[str, OptionScore], language: str) -> pd.DataFrame:
    rows = []
    for label, s in scores.items():
        lat = s.latency
        rows.append({
            "language": language, "option": label,
            "stt_p50_ms": lat.median if lat else np.nan, "p50_ci_low": lat.ci_low if lat else np.nan,
            "p50_ci_high": lat.ci_high if lat else np.nan, "processes": lat.k if lat else 0,
            "n": lat.n if lat else 0,
            "wer_pct": s.wer.wer * 100 if s.wer else np.nan,
            "wer_ci": f"{s.wer.wer_ci.low * 100:.1f}-{s.wer.wer_ci.high * 100:.1f}" if s.wer else "",
            "wer_vs_ref_points": s.vs_reference.diff * 100 if s.vs_reference else 0.0,
            "vs_ref_ci_high": s.vs_reference.ci_high * 100 if s.vs_reference else 0.0,
            "words_changed_vs_full_window_pct": s.agreement.wer * 100 if s.agreement else np.nan,
            "within_budget": s.within_budget,
            "statuses": ", ".join(f"{k} {v}" for k, v in sorted(s.statuses.items())),
        })
    return pd.DataFrame(rows).sort_values(["within_budget", "stt_p50_ms"], ascending=[False, True])


def lever_ratio(rows: pd.DataFrame, baseline: str, candidate: str) -> spread.PairedComparison | None:
    """STT time of ``candidate`` / ``baseline``, paired by round (None when either has no round in common)."""
    base, cand = _processes(rows[rows["option"] == baseline]), _processes(rows[rows["option"] == candidate])
    common = sorted({p.round for p in base} & {p.round for p in cand})
    if len(common) < 2:
        return None
    pick = lambda ps: [p for p in ps if p.round in common]  # noqa: E731
    return spread.compare_paired(pick(base), pick(cand))


TTS_WER_BUDGET_PCT = 10.0  # the round-trip WER (upper CI bound) a voice may have to enter the search


def voice_gate(store, target: str, options: list[StageOption], max_wer_pct: float = TTS_WER_BUDGET_PCT
               ) -> tuple[list[StageOption], pd.DataFrame]:
    """Voices whose newest stored round-trip WER (06_quality, trial ``tts_round_trip``) has its upper CI bound
    within ``max_wer_pct``; a voice 06 never measured is kept and labelled so. Returns (kept, evidence).

    When no voice passes, the clearest one measured (lowest upper CI bound) is kept and labelled so: a
    language must still get a stack, and on a few quick-mode sentences one misheard word can push every
    voice's upper bound over the budget. The evidence table says which voice entered this way."""
    found = store.results(experiment="tts_round_trip", target=target)
    found = found[(found["metric"] == "wer") & (found["status"] == "ok")] if len(found) else found
    rows, kept = [], []
    for option in options:
        mine = found[found["model_name"] == option.label] if len(found) else found
        if not len(mine):
            rows.append({"voice": option.label, "round_trip_wer_%": np.nan, "ci_high_%": np.nan, "run_id": None,
                         "mode": None, "enters_search": True, "why": "not measured by 06_quality: kept, unjudged"})
            kept.append(option)
            continue
        newest = mine.iloc[-1]
        extra = json.loads(newest["extra"]) if isinstance(newest["extra"], str) else {}
        high = 100 * float(extra.get("ci_high", np.nan))
        inside = bool(high <= max_wer_pct)
        rows.append({"voice": option.label, "round_trip_wer_%": 100 * float(newest["value"]), "ci_high_%": high,
                     "run_id": newest["run_id"], "mode": newest["mode"], "enters_search": inside,
                     "why": f"upper CI {'<=' if inside else '>'} {max_wer_pct:g}%"})
        if inside:
            kept.append(option)
    evidence = pd.DataFrame(rows)
    if not kept and len(evidence):
        clearest = int(evidence["ci_high_%"].idxmin())
        evidence.loc[clearest, "enters_search"] = True
        evidence.loc[clearest, "why"] += f"; no voice within {max_wer_pct:g}%: the clearest measured voice is kept"
        kept.append(options[clearest])
    return kept, evidence
