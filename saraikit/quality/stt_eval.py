"""Scoring STT systems on real speech: utterances, transcripts, WER/CER runs, noise sweeps.

The scoring rules (normalization, WER/CER, bootstrap CIs) live in
:mod:`saraikit.quality.wer`; this module decides *what* is scored.

Decisions:

- Audio is read once and resampled to 16 kHz (polyphase).  A clip is skipped,
  not transcribed, when it is silent (``saraikit.data.audio.silence_reason``)
  or shorter than :data:`MIN_CLIP_S` (the shortest real prompt, a lone "y",
  lasts 0.35 s).  These skips are listed with their reason beside the
  references :func:`saraikit.quality.wer.wer_report` skips (empty, or
  normalizing to nothing); nothing is dropped silently.
- Tables give WER/CER in percent (the unit of the KPIs); :class:`SttScore`
  figures keep :meth:`WerReport.figures` as fractions.
- Noise (:func:`noise_sweeps`): white noise or babble mixed at exact SNRs with
  :func:`saraikit.data.noise.mix_at_snr`.  Each clip's noise is drawn from a
  seed derived from the clip's position, and the same noise is used at every
  SNR and for every system, so curves differ only by level and model.  Babble
  is :data:`BABBLE_TALKERS` talkers from a pool of *other* clips (the target
  clip is never in its own babble); a pool with few distinct voices makes
  babble less varied than a real crowd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from saraikit.core.errors import ConfigError, DataError
from saraikit.core.progress import progress
from saraikit.core.store import Figure
from saraikit.data.audio import SAMPLE_RATE, read_audio, silence_reason
from saraikit.data.noise import babble, mix_at_snr, white_noise
from saraikit.quality.files import write_wav
from saraikit.quality.transcribe import SttSystem, Transcriber
from saraikit.quality.wer import WerReport, paired_wer_difference, wer_report

__all__ = [
    "BABBLE_TALKERS", "MIN_CLIP_S", "NOISES", "NOISE_TEXT", "SCORING_TEXT", "TABLE_NOTE", "TRANSCRIPT_COLUMNS",
    "AccuracyRun", "NoiseRun", "SttScore", "TranscribeSet", "Utterance", "audio_problem", "evenly", "load_utterances", "make_bad_inputs",
    "noise_sweeps", "noisy_copies", "percent", "run_accuracy", "score", "transcribe_all",
]

MIN_CLIP_S = 0.3
NOISES = ("white", "babble")
BABBLE_TALKERS = 4
SCORING_TEXT = ("corpus WER/CER on saraikit.textnorm-normalized text; 95% bootstrap CI over utterances "
                "(2000 resamples, seed 0)")
TABLE_NOTE = ("Corpus WER = all errors / all reference words; normalized = saraikit.textnorm on both sides (case, "
              "punctuation, numbers as words, accents folded for Spanish). Raw = jiwer's default (only whitespace "
              "collapsed).")
NOISE_TEXT = f"saraikit.noise.mix_at_snr, whole-clip power; babble of {BABBLE_TALKERS} other clips"


@dataclass
class Utterance:
    id: str
    dataset: str
    language: str
    reference: str
    samples: np.ndarray  # float32 mono at 16 kHz

    @property
    def duration_s(self) -> float:
        return self.samples.size / SAMPLE_RATE


def load_utterances(clips: Iterable, dataset: str) -> list[Utterance]:
    """Dataset clips (``saraikit.datasets.Clip``) read once at 16 kHz."""
    return [Utterance(clip.id, dataset, clip.language, clip.reference,
                      read_audio(clip.path, target_sr=SAMPLE_RATE).samples) for clip in clips]


def evenly(items: Sequence, n: int) -> list:
    """``n`` evenly spaced items of ``items`` in order (all of them when ``n`` is at least their number).

    Subsets are spread over a list, never its first n, so they span speakers and sessions."""
    items = list(items)
    return items if n >= len(items) else [items[i * len(items) // n] for i in range(n)]


def audio_problem(samples: np.ndarray, min_seconds: float = MIN_CLIP_S) -> str | None:
    """Why a 16 kHz clip is not transcribed (silent, empty, too short), or None."""
    reason = silence_reason(np.asarray(samples))
    if reason:
        return reason
    seconds = samples.size / SAMPLE_RATE
    if seconds < min_seconds:
        return f"clip of {seconds:.2f} s is shorter than {min_seconds:g} s"
    return None


TRANSCRIPT_COLUMNS = ["id", "dataset", "language", "duration_s", "reference", "hypothesis", "skipped"]


def transcribe_all(transcribe: Callable[[np.ndarray, str], str], utterances: Sequence[Utterance],
                   desc: str | None = None) -> pd.DataFrame:
    """One row per utterance (:data:`TRANSCRIPT_COLUMNS`); ``skipped`` holds the audio problem, if any.

    ``desc`` shows a progress bar with that label.
    """
    rows = []
    for utterance in (utterances if desc is None else progress(utterances, desc=desc)):
        problem = audio_problem(utterance.samples)
        hypothesis = "" if problem else transcribe(utterance.samples, utterance.language)
        rows.append({"id": utterance.id, "dataset": utterance.dataset, "language": utterance.language,
                     "duration_s": utterance.duration_s, "reference": utterance.reference,
                     "hypothesis": hypothesis, "skipped": problem})
    return pd.DataFrame(rows, columns=TRANSCRIPT_COLUMNS)


@dataclass
class SttScore:
    """A :class:`WerReport` plus the clips skipped before transcription."""

    report: WerReport
    transcripts: pd.DataFrame  # TRANSCRIPT_COLUMNS
    audio_skipped: pd.DataFrame  # id, reference, reason

    def skipped(self) -> pd.DataFrame:
        """Every utterance not scored, with ``stage`` (audio / reference) and ``reason``."""
        audio = self.audio_skipped.assign(stage="audio")
        reference = self.report.skipped.assign(stage="reference")
        return pd.concat([audio, reference], ignore_index=True)[["id", "stage", "reason", "reference"]]

    def skipped_counts(self) -> dict[str, int]:
        return self.skipped()["reason"].value_counts().to_dict()

    def figures(self) -> list[Figure]:
        skipped = self.skipped_counts()
        return [*self.report.figures(),
                Figure("utterances_skipped", float(sum(skipped.values())), "utterances", self.report.n,
                       "measured", {"reasons": skipped})]


def score(transcripts: pd.DataFrame, n_boot: int = 2000, seed: int | None = 0) -> SttScore:
    """Score a :func:`transcribe_all` frame (one language)."""
    languages = sorted(set(transcripts["language"]))
    if len(languages) != 1:
        raise DataError(f"score() needs utterances of one language, got {languages or 'none'}")
    kept = transcripts[transcripts["skipped"].isna()]
    audio_skipped = transcripts.loc[transcripts["skipped"].notna(), ["id", "reference", "skipped"]]
    audio_skipped = audio_skipped.rename(columns={"skipped": "reason"}).reset_index(drop=True)
    if kept.empty:
        raise DataError(f"no utterance could be transcribed: all {len(transcripts)} were skipped "
                        f"({audio_skipped['reason'].value_counts().to_dict()})")
    report = wer_report(kept["reference"], kept["hypothesis"], kept["id"], languages[0], n_boot=n_boot, seed=seed)
    return SttScore(report, transcripts, audio_skipped)


# --------------------------------------------------------------------------
# accuracy over systems and datasets


def percent(value: float) -> float:
    return 100.0 * value


@dataclass
class AccuracyRun:
    """Scores per (system label, dataset), with the systems that made them."""

    scores: dict[tuple[str, str], SttScore]
    systems: dict[str, SttSystem]

    def table(self) -> pd.DataFrame:
        """One row per (system, dataset): raw and normalized WER/CER (percent), CIs, n, skipped."""
        rows = []
        for (label, dataset), result in self.scores.items():
            report = result.report
            rows.append({
                "system": label, "dataset": dataset, "language": report.language, "n_utterances": report.n,
                "n_words": report.n_words, "wer_raw_%": percent(report.raw_wer), "wer_%": percent(report.wer),
                "wer_ci_low": percent(report.wer_ci.low), "wer_ci_high": percent(report.wer_ci.high),
                "cer_raw_%": percent(report.raw_cer), "cer_%": percent(report.cer),
                "cer_ci_low": percent(report.cer_ci.low), "cer_ci_high": percent(report.cer_ci.high),
                "skipped": len(result.skipped()),
            })
        return pd.DataFrame(rows)

    def transcripts(self) -> pd.DataFrame:
        frames = [result.transcripts.assign(system=label) for (label, _), result in self.scores.items()]
        return pd.concat(frames, ignore_index=True)

    def paired(self, baseline: str, candidate: str) -> pd.DataFrame:
        """``WER(candidate) - WER(baseline)`` in points per shared dataset, paired bootstrap CI."""
        rows = []
        for (label, dataset), base in self.scores.items():
            other = self.scores.get((candidate, dataset))
            if label != baseline or other is None:
                continue
            rows.append({"baseline": baseline, "candidate": candidate, "dataset": dataset,
                         **_paired_row(base.report, other.report)})
        return pd.DataFrame(rows)


def _paired_row(baseline: WerReport, candidate: WerReport) -> dict:
    """Paired WER difference (percentage points) and how many normalized transcripts are identical."""
    diff = paired_wer_difference(baseline, candidate)
    hypotheses = candidate.rows.set_index("id")["hyp_norm"]
    identical = int((baseline.rows.set_index("id")["hyp_norm"] == hypotheses.loc[baseline.rows["id"]]).sum())
    return {"n_utterances": diff.n, "wer_baseline_%": percent(baseline.wer), "wer_candidate_%": percent(candidate.wer),
            "diff_points": percent(diff.diff), "ci_low": percent(diff.ci_low), "ci_high": percent(diff.ci_high),
            "significant": diff.significant, "identical_transcripts": identical}


def _supported_sets(systems, sets: dict) -> list:
    """(system, {set name: utterances}) for every system and the non-empty sets in a language it supports."""
    pairs = []
    for system in systems:
        wanted = {name: items for name, items in sets.items() if items and system.supports(items[0].language)}
        if wanted:
            pairs.append((system, wanted))
    return pairs


TranscribeSet = Callable[[SttSystem, Sequence[Utterance]], pd.DataFrame]
"""``transcribe_set(system, utterances)``: the :func:`transcribe_all` frame of a whole set, made elsewhere
(e.g. sharded over Dask workers by :mod:`saraikit.fleet.shards`); scoring stays here, so figures match."""


def run_accuracy(systems: Sequence[SttSystem], sets: dict[str, list[Utterance]], cpu_threads: int = 2,
                 n_boot: int = 2000, transcribe_set: TranscribeSet | None = None) -> AccuracyRun:
    """Transcribe every dataset in ``sets`` with every system that supports its language; one model loaded at a time.

    ``transcribe_set`` replaces the local transcription of a set (see :data:`TranscribeSet`)."""
    scores = {}
    for system, wanted in _supported_sets(systems, sets):
        transcriber = None if transcribe_set else Transcriber(system, cpu_threads)
        for name, items in wanted.items():
            frame = transcribe_set(system, items) if transcribe_set else \
                transcribe_all(transcriber, items, f"{system.label} {name}")
            scores[(system.label, name)] = score(frame, n_boot=n_boot)
        del transcriber
    return AccuracyRun(scores, {system.label: system for system in systems})


# --------------------------------------------------------------------------
# noise robustness


def _noise_for(kind: str, utterance: Utterance, pool: Sequence[Utterance], seed: int) -> np.ndarray:
    length = utterance.samples.size
    if kind == "white":
        return white_noise(length, seed=seed)
    if kind == "babble":
        others = [other.samples for other in pool if other.id != utterance.id]
        if len(others) < BABBLE_TALKERS:
            raise ConfigError(f"babble for {utterance.id!r} needs {BABBLE_TALKERS} other clips in the pool, "
                              f"got {len(others)}")
        return babble(others, n_speakers=BABBLE_TALKERS, length=length, seed=seed)
    raise ConfigError(f"unknown noise {kind!r}; use one of {', '.join(NOISES)}")


def noisy_copies(utterances: Sequence[Utterance], noise: str, snr_db: float, pool: Sequence[Utterance],
                 seed: int = 0) -> tuple[list[Utterance], list[float]]:
    """Each utterance mixed with ``noise`` at ``snr_db``, and the SNR measured on each mixture."""
    mixed, measured = [], []
    for position, utterance in enumerate(utterances):
        clip_seed = seed + position
        mixture = mix_at_snr(utterance.samples, _noise_for(noise, utterance, pool, clip_seed), snr_db, seed=clip_seed)
        mixed.append(Utterance(utterance.id, utterance.dataset, utterance.language, utterance.reference, mixture.mixed))
        measured.append(mixture.measured_snr_db)
    return mixed, measured


@dataclass
class NoiseRun:
    table: pd.DataFrame  # one row per (system, set, noise, snr_db); noise "clean" has snr_db inf
    transcripts: pd.DataFrame  # TRANSCRIPT_COLUMNS + system, noise, snr_db
    scores: dict[tuple[str, str, str, float], SttScore] = field(default_factory=dict)  # (system, set, noise, snr)

    def versus_clean(self) -> pd.DataFrame:
        """Each noisy condition against the clean clips: paired WER difference in points (needs ``clean``)."""
        rows = []
        for (label, name, noise, snr), result in self.scores.items():
            clean = self.scores.get((label, name, "clean", math.inf))
            if noise != "clean" and clean is not None:
                rows.append({"system": label, "set": name, "noise": noise, "snr_db": snr,
                             **_paired_row(clean.report, result.report)})
        return pd.DataFrame(rows)

    def first_significant(self) -> pd.DataFrame:
        """Per (system, set, noise): the highest SNR whose WER is significantly above clean (NaN if none)."""
        paired = self.versus_clean()
        if paired.empty:
            return paired
        worse = paired[paired["significant"] & (paired["diff_points"] > 0)]
        highest = worse.groupby(["system", "set", "noise"], sort=False)["snr_db"].max()
        keys = paired[["system", "set", "noise"]].drop_duplicates()
        return keys.merge(highest.rename("highest_snr_worse_than_clean").reset_index(), how="left")


def _noise_row(label: str, name: str, noise: str, snr_db: float, result: SttScore, measured: list[float]) -> dict:
    report = result.report
    return {"system": label, "set": name, "language": report.language, "noise": noise, "snr_db": snr_db,
            "measured_snr_db": float(np.mean(measured)) if measured else math.inf, "n_utterances": report.n,
            "wer_%": percent(report.wer), "wer_ci_low": percent(report.wer_ci.low),
            "wer_ci_high": percent(report.wer_ci.high),
            "cer_%": percent(report.cer), "skipped": len(result.skipped()),
            # transcripts with more inserted words than the reference has: Whisper looping on one word
            "runaway_utterances": int((report.rows["insertions"] > report.rows["ref_words"]).sum())}


def noise_sweeps(systems: Sequence[SttSystem], sets: dict[str, list[Utterance]], noises: Sequence[str] = NOISES,
                 snrs: Sequence[float] = (20, 10, 5, 0), babble_pool: Sequence[Utterance] = (), seed: int = 0,
                 clean: pd.DataFrame | None = None, cpu_threads: int = 2, n_boot: int = 2000,
                 transcriber_factory: Callable = Transcriber, transcribe_set: TranscribeSet | None = None) -> NoiseRun:
    """WER of each system on each set (keyed by a name, one language each) with noise at each SNR.

    ``clean`` (``AccuracyRun.transcripts()``) adds a clean row per system and
    set (``snr_db`` = inf, noise "clean") from transcripts already made.
    ``transcribe_set`` transcribes each noisy set elsewhere (the mixing stays here, seeds and all).
    """
    rows, frames, scores = [], [], {}
    for system, wanted in _supported_sets(systems, sets):
        transcriber = None if transcribe_set else transcriber_factory(system, cpu_threads)
        for name, items in wanted.items():
            conditions = [(noise, float(snr)) for noise in noises for snr in snrs]
            if clean is not None:
                clean_score = _clean_score(system.label, name, items, clean, n_boot)
                scores[(system.label, name, "clean", math.inf)] = clean_score
                rows.append(_noise_row(system.label, name, "clean", math.inf, clean_score, []))
            for noise, snr in progress(conditions, desc=f"{system.label} {name} noise conditions"):
                mixed, measured = noisy_copies(items, noise, snr, babble_pool, seed)
                transcripts = transcribe_set(system, mixed) if transcribe_set else transcribe_all(transcriber, mixed)
                result = score(transcripts, n_boot=n_boot)
                scores[(system.label, name, noise, snr)] = result
                rows.append(_noise_row(system.label, name, noise, snr, result, measured))
                frames.append(transcripts.assign(system=system.label, noise=noise, snr_db=snr))
        del transcriber
    table = pd.DataFrame(rows)
    transcripts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRANSCRIPT_COLUMNS)
    return NoiseRun(table, transcripts, scores)


def _clean_score(label: str, name: str, items: Sequence[Utterance], clean: pd.DataFrame, n_boot: int) -> SttScore:
    ids = {item.id for item in items}
    mine = clean[(clean["system"] == label) & clean["id"].isin(ids)].drop_duplicates("id")
    missing = ids - set(mine["id"])
    if missing:
        raise DataError(f"clean transcripts of {label} lack {len(missing)} utterance(s) of {name}, "
                        f"e.g. {sorted(missing)[0]!r}")
    return score(mine[TRANSCRIPT_COLUMNS], n_boot=n_boot)


# --------------------------------------------------------------------------
# bad input, shown end to end


def make_bad_inputs(folder: str | Path, speech_clip) -> Path:
    """A manifest of five rows around one real ``speech_clip``: one good, four bad; returns its path.

    good (the clip), silent (1 s of zeros), too short (0.2 s cut from the
    clip), empty reference, reference ``"..."``.  The dataset drops the
    silent file and the empty reference; :func:`score` skips the short clip
    and the reference that normalizes to nothing.
    """
    folder = Path(folder)
    audio = read_audio(speech_clip.path, target_sr=SAMPLE_RATE)
    middle = audio.samples.size // 2
    write_wav(folder / "silent.wav", np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    write_wav(folder / "short.wav", audio.samples[middle:middle + SAMPLE_RATE // 5], SAMPLE_RATE)
    write_wav(folder / "speech.wav", audio.samples, SAMPLE_RATE)
    rows = pd.DataFrame([
        {"id": "good", "path": "speech.wav", "reference": speech_clip.reference},
        {"id": "silent", "path": "silent.wav", "reference": speech_clip.reference},
        {"id": "too_short", "path": "short.wav", "reference": speech_clip.reference},
        {"id": "empty_reference", "path": "speech.wav", "reference": ""},
        {"id": "dots_reference", "path": "speech.wav", "reference": "..."},
    ]).assign(language=speech_clip.language)
    manifest = folder / "bad_inputs.csv"
    manifest.write_text(rows.to_csv(index=False), encoding="utf-8")
    return manifest

