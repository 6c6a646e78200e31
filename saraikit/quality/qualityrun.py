"""Quality runs on real speech: STT accuracy, noise robustness, TTS round trip, predicted MOS.

The glue behind notebook 06: it feeds real clips to the STT systems, synthetic
speech back to an STT system, and audio to DNSMOS, then hands the text to
:mod:`saraikit.quality` (WER/CER with CIs) and the audio to :mod:`saraikit.mos`.
The scoring rules live there; this module decides *what* is scored and how.

Decisions:

- Systems (:class:`SttSystem`) are a CTranslate2 Whisper folder run end to end
  by faster-whisper, or the same folder with its encoder replaced by an ONNX
  file (:class:`saraikit.whisper_onnx.OnnxEncoderWhisper`).  The ONNX
  variants decode with CTranslate2 at float32, so "ONNX FP32 vs CTranslate2
  float32" isolates the encoder runtime and "ONNX INT8 vs ONNX FP32" isolates
  the encoder's quantization.  INT8 encoders are the files notebook 01 writes
  with :func:`saraikit.quantize.quantize_all` (``<model>-encoder.<variant>.onnx``
  under ``outputs/<target>/quantized/``; pre-processed files and re-quantized
  variants, ``<variant>.<variant>``, excluded).  Unless told which, the variant
  notebook 01 recommended (its newest ``model_size_mb`` KPI row for this
  target) is scored first.
- Every system decodes the same way (:data:`DECODING`): greedy (beam 1), no
  timestamps, temperature 0 *without* fallback, no conditioning on previous
  text, VAD off, language given by the dataset (English-only models get
  none).  faster-whisper's default fallback re-samples at temperature > 0
  when a decode looks bad, which makes WER change from run to run; the ONNX
  path has no fallback at all, so the defaults would also make the
  comparison unfair.  The pipeline's STT stage is greedy too but keeps the
  fallback; without it a noisy clip can send Whisper into a loop on one word
  (counted as ``runaway_utterances``), so WER at low SNR here can be worse
  than the pipeline's.
- Audio is read once and resampled to 16 kHz (polyphase).  A clip is skipped,
  not transcribed, when it is silent (``saraikit.data.audio.silence_reason``) or
  shorter than :data:`MIN_CLIP_S` (0.3 s: the shortest prompt in the sets, a
  lone "y", lasts 0.35 s).  These skips are listed with their reason beside
  the references :func:`saraikit.quality.wer_report` skips (empty, or
  normalizing to nothing); nothing is dropped silently.
- Noise (:func:`noise_sweeps`): white noise or babble mixed at exact SNRs with
  :func:`saraikit.noise.mix_at_snr`.  Each clip's noise is drawn from a seed
  derived from the clip's position, and the same noise is used at every SNR
  and for every system, so curves differ only by level and model.  Babble is
  4 talkers from a pool of *other* clips (the target clip is never in its own
  babble); the pool has few distinct voices (the Spanish prompts are one
  speaker), which the notebook says.
- TTS: each sentence is synthesized once per voice, equalized to
  :data:`LEVEL_DBFS` (-25 dBFS RMS, peak kept under 0.98) and written as a
  16-bit WAV at the voice's own rate.  The same file is transcribed (round
  trip), scored by DNSMOS and put in the listening kit, so all three judge
  the same audio.  Equal levels matter: DNSMOS's BAK/OVRL scores move with the
  level of a real recording (P.808 does not), and louder clips tend to win in
  a listening test.  Piper runs with its voice's configured noise scales, as
  deployed, so its audio (and round-trip WER) varies slightly between runs.
- Predicted MOS KPI: DNSMOS's P.808 score, the same ACR 1-5 scale the
  listening kit asks raters for; SIG/BAK/OVRL are stored beside it.  It is a
  network's estimate of a listening test (provenance "estimated"), labelled
  "predicted MOS (DNSMOS), not human MOS" everywhere.
- WER/CER KPIs are written in percent (the unit of ``saraikit.kpi.KPIS``);
  the trials keep :meth:`WerReport.figures` as fractions.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import soundfile as sf

from saraikit.core import paths
from saraikit.models import catalog
from saraikit.data.audio import read_audio
from saraikit.core.errors import ConfigError, DataError
from saraikit.report.kpi import record_kpi
from saraikit.quality.mos import LABEL as DNSMOS_LABEL
from saraikit.quality.mos import SCORE_KEYS, Dnsmos
from saraikit.data.noise import PEAK_LIMIT, babble, mix_at_snr, white_noise
from saraikit.core.progress import progress
from saraikit.quality.wer import WerReport, paired_wer_difference, wer_report
from saraikit.data.audio import SAMPLE_RATE as STT_SAMPLE_RATE, silence_reason
from saraikit.engines.espeak import EspeakTTS
from saraikit.engines.piper import PiperTTS
from saraikit.core.stats import bootstrap_ci
from saraikit.core.store import Figure, ResultsStore, Trial

__all__ = [
    "DECODING", "LEVEL_DBFS", "MIN_CLIP_S", "MOS_LABEL", "NOISES", "AccuracyRun", "NoiseRun", "SttScore",
    "SttSystem", "Transcriber", "Utterance", "Voice", "audio_problem", "build_listening_kit", "collect_ratings",
    "default_voices", "equalize", "int8_encoders", "load_utterances", "make_bad_inputs", "mos_summary",
    "noise_sweeps", "noisy_copies", "predicted_mos", "recommended_int8", "record_accuracy", "record_noise",
    "record_tts", "round_trip", "run_accuracy", "save_frame", "score", "standard_systems", "synthesize",
    "transcribe_all",
]

MIN_CLIP_S = 0.3
LEVEL_DBFS = -25.0
NOISES = ("white", "babble")
BABBLE_TALKERS = 4
MOS_LABEL = f"{DNSMOS_LABEL}, not human MOS"
DECODING = {"beam_size": 1, "without_timestamps": True, "temperature": 0.0, "condition_on_previous_text": False}
DECODING_TEXT = ("greedy (beam 1), no timestamps, temperature 0 without fallback, "
                 "no conditioning on previous text, VAD off, language from the dataset")
SCORING_TEXT = ("corpus WER/CER on saraikit.textnorm-normalized text; 95% bootstrap CI over utterances "
                "(2000 resamples, seed 0)")


# --------------------------------------------------------------------------
# STT systems


@dataclass(frozen=True)
class SttSystem:
    """One way to turn speech into text; ``label`` names it in every table and KPI."""

    label: str
    model: str  # manifest name of a CTranslate2 Whisper folder
    compute_type: str = "int8"  # CTranslate2 compute type (the decoder's, for ONNX-encoder systems)
    encoder: Path | None = None  # ONNX encoder file; None = CTranslate2 end to end

    @property
    def backend(self) -> str:
        return "ctranslate2" if self.encoder is None else "onnx-encoder"

    @property
    def english_only(self) -> bool:
        return self.model.endswith(".en")

    def supports(self, language: str) -> bool:
        return language == "en" or not self.english_only

    def sha256(self) -> str:
        """The ONNX encoder's sha256 for ONNX-encoder systems, else the model's (its model.bin)."""
        return catalog.sha256_file(self.encoder) if self.encoder else catalog.model_entry(self.model).sha256

    def config(self) -> dict:
        return {"system": self.label, "model": self.model, "backend": self.backend,
                "compute_type": self.compute_type, "encoder": self.encoder.name if self.encoder else None,
                "decoding": DECODING}


def int8_encoders(folder: str | Path, model: str = "whisper-base") -> list[tuple[str, Path]]:
    """``(variant, path)`` of the quantized encoders of ``model`` in ``folder`` (searched recursively)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stem = f"{model}-encoder."
    found = []
    for path in folder.rglob(f"{stem}*.onnx"):
        hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
        variant = path.name[len(stem):-len(".onnx")]
        if not hidden and variant != "preprocessed" and "." not in variant:
            found.append((variant, path))
    return sorted(found)


def recommended_int8(store: ResultsStore, target: str, model: str = "whisper-base") -> list[str]:
    """Encoder variants notebook 01 recommended for ``target``, newest first (from its KPI rows)."""
    from saraikit.report.kpi import history

    rows = history(store, target)
    prefix = f"{model}-encoder."
    chosen = rows[(rows["kpi"] == "model_size_mb") & rows["model"].str.startswith(prefix)]
    variants = chosen.sort_values("trial_id", ascending=False)["model"].str.removeprefix(prefix)
    return list(dict.fromkeys(variants))


def standard_systems(target: str, max_int8: int | None = 1, int8_variants: Sequence[str] | None = None,
                     prefer: Sequence[str] = ()) -> tuple[list[SttSystem], list[str]]:
    """The systems notebook 06 compares, and notes on what was left out.

    INT8 encoders: the variants named in ``int8_variants`` (ConfigError if
    one is missing), else the first ``max_int8`` found, those in ``prefer``
    first, then by variant name.
    """
    from saraikit.engines.whisper_onnx import default_export

    systems = [
        SttSystem("whisper-tiny.en int8", "whisper-tiny.en", "int8"),
        SttSystem("whisper-base int8", "whisper-base", "int8"),
        SttSystem("whisper-base float32", "whisper-base", "float32"),
        SttSystem("whisper-base onnx-fp32", "whisper-base", "float32", default_export("whisper-base")),
    ]
    folder = paths.outputs_dir() / target / "quantized"
    found = int8_encoders(folder)
    notes = [] if found else [f"no INT8 whisper-base encoder in {folder} (notebook 01 makes them): INT8 skipped"]
    if int8_variants is not None:
        available = dict(found)
        missing = [variant for variant in int8_variants if variant not in available]
        if missing:
            raise ConfigError(f"INT8 encoder variant(s) {missing} not found in {folder}; "
                              f"available: {sorted(available) or 'none'}")
        found = [(variant, available[variant]) for variant in int8_variants]
    else:
        rank = {variant: position for position, variant in enumerate(prefer)}
        found = sorted(found, key=lambda item: (rank.get(item[0], len(rank)), item[0]))
        if max_int8 is not None and len(found) > max_int8:
            notes.append(f"{len(found)} INT8 encoders found, the first {max_int8} scored "
                         f"(preferred first: {', '.join(prefer) or 'none'}): "
                         + ", ".join(variant for variant, _ in found))
            found = found[:max_int8]
    systems += [SttSystem(f"whisper-base onnx-int8 {variant}", "whisper-base", "float32", path)
                for variant, path in found]
    return systems, notes


class Transcriber:
    """A loaded :class:`SttSystem`: ``transcriber(samples_16k, language) -> text``."""

    def __init__(self, system: SttSystem, cpu_threads: int = 2):
        from saraikit.engines.sessions import Ct2WhisperConfig, OrtConfig, build_faster_whisper

        self.system = system
        model_dir = catalog.model_path(system.model)
        ct2 = Ct2WhisperConfig(compute_type=system.compute_type, cpu_threads=cpu_threads)
        if system.encoder is None:
            self._whisper = build_faster_whisper(model_dir, ct2)
            self._onnx = None
        else:
            from saraikit.engines.whisper_onnx import OnnxEncoderWhisper

            self._whisper = None
            self._onnx = OnnxEncoderWhisper(model_dir, system.encoder, OrtConfig(intra_op_num_threads=cpu_threads), ct2)

    def __call__(self, samples: np.ndarray, language: str) -> str:
        language = None if self.system.english_only else language
        if self._onnx is not None:
            return self._onnx.transcribe(samples, language=language, beam_size=DECODING["beam_size"]).text
        segments, _ = self._whisper.transcribe(samples, language=language, vad_filter=False, **DECODING)
        return " ".join(segment.text.strip() for segment in segments if segment.text.strip())


# --------------------------------------------------------------------------
# utterances and transcription


@dataclass
class Utterance:
    id: str
    dataset: str
    language: str
    reference: str
    samples: np.ndarray  # float32 mono at 16 kHz

    @property
    def duration_s(self) -> float:
        return self.samples.size / STT_SAMPLE_RATE


def load_utterances(clips: Iterable, dataset: str) -> list[Utterance]:
    """Dataset clips (``saraikit.datasets.Clip``) read once at 16 kHz."""
    return [Utterance(clip.id, dataset, clip.language, clip.reference,
                      read_audio(clip.path, target_sr=STT_SAMPLE_RATE).samples) for clip in clips]


def audio_problem(samples: np.ndarray, min_seconds: float = MIN_CLIP_S) -> str | None:
    """Why a 16 kHz clip is not transcribed (silent, empty, too short), or None."""
    reason = silence_reason(np.asarray(samples))
    if reason:
        return reason
    seconds = samples.size / STT_SAMPLE_RATE
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


def _pct(value: float) -> float:
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
                "n_words": report.n_words, "wer_raw_%": _pct(report.raw_wer), "wer_%": _pct(report.wer),
                "wer_ci_low": _pct(report.wer_ci.low), "wer_ci_high": _pct(report.wer_ci.high),
                "cer_raw_%": _pct(report.raw_cer), "cer_%": _pct(report.cer),
                "cer_ci_low": _pct(report.cer_ci.low), "cer_ci_high": _pct(report.cer_ci.high),
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
    return {"n_utterances": diff.n, "wer_baseline_%": _pct(baseline.wer), "wer_candidate_%": _pct(candidate.wer),
            "diff_points": _pct(diff.diff), "ci_low": _pct(diff.ci_low), "ci_high": _pct(diff.ci_high),
            "significant": diff.significant, "identical_transcripts": identical}


def run_accuracy(systems: Sequence[SttSystem], sets: dict[str, list[Utterance]], cpu_threads: int = 2,
                 n_boot: int = 2000) -> AccuracyRun:
    """Transcribe every dataset in ``sets`` with every system that supports its language; one model loaded at a time."""
    scores = {}
    for system in systems:
        wanted = {name: items for name, items in sets.items() if items and system.supports(items[0].language)}
        if not wanted:
            continue
        transcriber = Transcriber(system, cpu_threads)
        for name, items in wanted.items():
            scores[(system.label, name)] = score(transcribe_all(transcriber, items, f"{system.label} {name}"),
                                                 n_boot=n_boot)
        del transcriber
    return AccuracyRun(scores, {system.label: system for system in systems})


def record_accuracy(store: ResultsStore, run_id: str, run: AccuracyRun, experiment: str = "stt_accuracy") -> pd.DataFrame:
    """One trial per (system, dataset) and the ``wer``/``cer`` KPIs (percent); returns their ids."""
    rows = []
    for (label, dataset), result in run.scores.items():
        system, report = run.systems[label], result.report
        sha = system.sha256()
        trial_id = store.record(run_id, Trial(
            experiment, {**system.config(), "dataset": dataset, "n_clips": len(result.transcripts)},
            result.figures(), model_name=label, model_sha256=sha,
            method={"decoding": DECODING_TEXT, "scoring": SCORING_TEXT, "audio": "resampled to 16 kHz"},
            samples=[float(w) for w in report.rows["wer"]]))
        method = f"{system.backend} {system.compute_type}; {DECODING_TEXT}; {SCORING_TEXT}"
        kpi_ids = [record_kpi(store, run_id, name, _pct(value), report.n, ci=(_pct(ci.low), _pct(ci.high)),
                              dataset=dataset, method=method, model_name=label, model_sha256=sha,
                              source_trials=[trial_id])
                   for name, value, ci in (("wer", report.wer, report.wer_ci), ("cer", report.cer, report.cer_ci))]
        rows.append({"system": label, "dataset": dataset, "trial_id": trial_id, "kpi_trial_ids": kpi_ids})
    return pd.DataFrame(rows)


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
            "wer_%": _pct(report.wer), "wer_ci_low": _pct(report.wer_ci.low), "wer_ci_high": _pct(report.wer_ci.high),
            "cer_%": _pct(report.cer), "skipped": len(result.skipped()),
            # transcripts with more inserted words than the reference has: Whisper looping on one word
            "runaway_utterances": int((report.rows["insertions"] > report.rows["ref_words"]).sum())}


def noise_sweeps(systems: Sequence[SttSystem], sets: dict[str, list[Utterance]], noises: Sequence[str] = NOISES,
                 snrs: Sequence[float] = (20, 10, 5, 0), babble_pool: Sequence[Utterance] = (), seed: int = 0,
                 clean: pd.DataFrame | None = None, cpu_threads: int = 2, n_boot: int = 2000,
                 transcriber_factory: Callable = Transcriber) -> NoiseRun:
    """WER of each system on each set (keyed by a name, one language each) with noise at each SNR.

    ``clean`` (``AccuracyRun.transcripts()``) adds a clean row per system and
    set (``snr_db`` = inf, noise "clean") from transcripts already made.
    """
    rows, frames, scores = [], [], {}
    for system in systems:
        wanted = {name: items for name, items in sets.items() if items and system.supports(items[0].language)}
        if not wanted:
            continue
        transcriber = transcriber_factory(system, cpu_threads)
        for name, items in wanted.items():
            conditions = [(noise, float(snr)) for noise in noises for snr in snrs]
            if clean is not None:
                clean_score = _clean_score(system.label, name, items, clean, n_boot)
                scores[(system.label, name, "clean", math.inf)] = clean_score
                rows.append(_noise_row(system.label, name, "clean", math.inf, clean_score, []))
            for noise, snr in progress(conditions, desc=f"{system.label} {name} noise conditions"):
                mixed, measured = noisy_copies(items, noise, snr, babble_pool, seed)
                transcripts = transcribe_all(transcriber, mixed)
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


def record_noise(store: ResultsStore, run_id: str, run: NoiseRun, systems: dict[str, SttSystem],
                 experiment: str = "stt_noise") -> list[int]:
    """One trial per (system, set, noise, SNR); the clean rows are already in the accuracy trials."""
    trial_ids = []
    for (label, name, noise, snr), result in run.scores.items():
        if noise == "clean":
            continue
        system = systems[label]
        trial_ids.append(store.record(run_id, Trial(
            experiment, {**system.config(), "set": name, "noise": noise, "snr_db": snr},
            result.figures(), model_name=label, model_sha256=system.sha256(),
            method={"decoding": DECODING_TEXT, "scoring": SCORING_TEXT,
                    "noise": f"saraikit.noise.mix_at_snr, whole-clip power; babble of {BABBLE_TALKERS} other clips"},
            samples=[float(w) for w in result.report.rows["wer"]])))
    return trial_ids


# --------------------------------------------------------------------------
# TTS: synthesis, round trip, predicted MOS


@dataclass(frozen=True)
class Voice:
    label: str
    language: str
    engine: str  # "piper" | "espeak-ng"
    model: str  # manifest name (piper) or espeak-ng voice name

    def build(self):
        if self.engine == "piper":
            return PiperTTS(catalog.model_path(self.model), name=self.label)
        if self.engine == "espeak-ng":
            return EspeakTTS(self.model, name=self.label)
        raise ConfigError(f"voice {self.label!r}: unknown engine {self.engine!r} (piper, espeak-ng)")

    def sha256(self) -> str | None:
        return catalog.model_entry(self.model).sha256 if self.engine == "piper" else None

    def version(self) -> str:
        if self.engine == "piper":
            return self.model
        done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=30)
        return done.stdout.strip() or "espeak-ng (version unknown)"


def default_voices() -> list[Voice]:
    return [Voice("piper-en_US-joe-medium", "en", "piper", "piper-en_US-joe-medium"),
            Voice("espeak-ng-en", "en", "espeak-ng", "en"),
            Voice("espeak-ng-es", "es", "espeak-ng", "es")]


def equalize(samples: np.ndarray, level_dbfs: float = LEVEL_DBFS) -> np.ndarray:
    """``samples`` scaled to an RMS of ``level_dbfs`` (dBFS re a full-scale peak), peak kept <= 0.98."""
    samples = np.asarray(samples, dtype=np.float64)
    rms = math.sqrt(float(np.mean(np.square(samples)))) if samples.size else 0.0
    if rms == 0.0:
        raise DataError("cannot set the level of digital silence")
    scaled = samples * 10 ** (level_dbfs / 20) / rms
    peak = float(np.max(np.abs(scaled)))
    if peak > PEAK_LIMIT:
        scaled *= PEAK_LIMIT / peak
    return scaled.astype(np.float32)


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        sf.write(temporary, samples, sample_rate, format="WAV", subtype="PCM_16")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def synthesize(voice: Voice, sentences: Sequence[str], out_dir: str | Path,
               level_dbfs: float = LEVEL_DBFS) -> pd.DataFrame:
    """Speak each sentence, equalize it and write ``out_dir/<voice>/<text_id>.wav``; one row per sentence.

    ``text_id`` is ``<language>-<position>`` (``en-00``), so the same sentence
    has the same id for every voice of a language.
    """
    if isinstance(sentences, str) or not sentences:
        raise DataError(f"voice {voice.label}: expected a non-empty list of sentences")
    stage = voice.build()
    stage.load()
    rows = []
    for position, text in enumerate(progress(sentences, desc=f"synthesizing {voice.label}")):
        audio = stage.run(text).value
        if audio.samples.size == 0:
            raise DataError(f"voice {voice.label} produced no audio for {text!r}")
        text_id = f"{voice.language}-{position:02d}"
        path = Path(out_dir) / voice.label / f"{text_id}.wav"
        _write_wav(path, equalize(audio.samples, level_dbfs), audio.sample_rate)
        rows.append({"voice": voice.label, "language": voice.language, "text_id": text_id, "text": text,
                     "path": str(path), "sample_rate": audio.sample_rate,
                     "duration_s": audio.samples.size / audio.sample_rate})
    return pd.DataFrame(rows)


def round_trip(transcribe: Callable[[np.ndarray, str], str], synthesized: pd.DataFrame,
               n_boot: int = 2000) -> dict[str, SttScore]:
    """Transcribe each voice's audio and score it against the text it was given; one score per voice."""
    results = {}
    for label, group in synthesized.groupby("voice", sort=False):
        items = [Utterance(row.text_id, "tts", row.language, row.text,
                           read_audio(row.path, target_sr=STT_SAMPLE_RATE).samples) for row in group.itertuples()]
        results[label] = score(transcribe_all(transcribe, items, f"round trip {label}"), n_boot=n_boot)
    return results


def predicted_mos(groups: dict[str, Sequence[np.ndarray]], scorer: Dnsmos | None = None,
                  level_dbfs: float = LEVEL_DBFS) -> pd.DataFrame:
    """DNSMOS of 16 kHz clips per group (voice or recording set), each equalized to ``level_dbfs`` first."""
    scorer = scorer or Dnsmos()
    rows = []
    for group, clips in groups.items():
        for position, samples in enumerate(progress(clips, desc=f"DNSMOS {group}")):
            rows.append({"group": group, "clip": position, **scorer(equalize(samples, level_dbfs))})
    return pd.DataFrame(rows)


def mos_summary(frame: pd.DataFrame, seed: int | None = 0) -> pd.DataFrame:
    """Mean predicted MOS per group with a 95% bootstrap CI over clips (P.808, and SIG/BAK/OVRL)."""
    rows = []
    for group, clips in frame.groupby("group", sort=False):
        scored = clips[clips["skipped"].isna()]
        row = {"group": group, "n_clips": len(scored), "n_skipped": len(clips) - len(scored), "label": MOS_LABEL}
        for key in SCORE_KEYS:
            if scored.empty:
                row[key] = row[f"{key}_ci_low"] = row[f"{key}_ci_high"] = math.nan
                continue
            interval = bootstrap_ci(scored[key].to_numpy(float), np.mean, 0.95, seed=seed)
            row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"] = interval.estimate, interval.low, interval.high
        rows.append(row)
    return pd.DataFrame(rows)


def record_tts(store: ResultsStore, run_id: str, voices: Sequence[Voice], trips: dict[str, SttScore],
               mos: pd.DataFrame, stt: SttSystem, dataset: str = "assistant sentences") -> pd.DataFrame:
    """Trials and KPIs of the round trip (``tts_intelligibility_wer``) and DNSMOS (``predicted_mos``)."""
    rows = []
    summary = mos_summary(mos).set_index("group")
    for voice in voices:
        sha, version = voice.sha256(), voice.version()
        if voice.label in trips:
            report = trips[voice.label].report
            trial = store.record(run_id, Trial(
                "tts_round_trip", {"voice": voice.label, "engine": version, "stt": stt.label, "level_dbfs": LEVEL_DBFS},
                trips[voice.label].figures(), model_name=voice.label, model_sha256=sha,
                method={"stt": f"{stt.label}; {DECODING_TEXT}", "scoring": SCORING_TEXT}))
            kpi_id = record_kpi(store, run_id, "tts_intelligibility_wer", _pct(report.wer), report.n,
                                ci=(_pct(report.wer_ci.low), _pct(report.wer_ci.high)),
                                dataset=f"{dataset} ({voice.language})", model_name=voice.label, model_sha256=sha,
                                method=f"synthesize, transcribe with {stt.label}, WER vs input text; {SCORING_TEXT}",
                                source_trials=[trial])
            rows.append({"voice": voice.label, "kpi": "tts_intelligibility_wer", "trial_id": trial, "kpi_id": kpi_id})
        if voice.label in summary.index:
            clips = mos[mos["group"] == voice.label]
            row = summary.loc[voice.label]
            figures = [Figure(f"dnsmos_{key}", row[key], "predicted MOS (1-5)", int(row["n_clips"]), "estimated",
                              {"label": MOS_LABEL, "ci_low": row[f"{key}_ci_low"], "ci_high": row[f"{key}_ci_high"]})
                       for key in SCORE_KEYS]
            trial = store.record(run_id, Trial(
                "tts_predicted_mos", {"voice": voice.label, "engine": version, "level_dbfs": LEVEL_DBFS}, figures,
                model_name=voice.label, model_sha256=sha, method={"description": MOS_LABEL},
                samples=[float(v) for v in clips["p808_mos"].dropna()]))
            kpi_id = record_kpi(store, run_id, "predicted_mos", row["p808_mos"], int(row["n_clips"]),
                                ci=(row["p808_mos_ci_low"], row["p808_mos_ci_high"]),
                                dataset=f"{dataset} ({voice.language})", model_name=voice.label, model_sha256=sha,
                                method="DNSMOS P.808 (predicted, not human MOS), clips at -25 dBFS RMS",
                                provenance="estimated", source_trials=[trial])
            rows.append({"voice": voice.label, "kpi": "predicted_mos", "trial_id": trial, "kpi_id": kpi_id})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------
# human listening kit


def build_listening_kit(synthesized: pd.DataFrame, systems: Sequence[str], kit_dir: str | Path,
                        n_sentences: int = 4, seed: int = 0):
    """Build a blinded kit of ``systems`` on their first ``n_sentences`` shared sentences.

    Returns ``(kit, message)``; ``kit`` is None when a kit or key already
    exists there (it is never overwritten: ratings collected against it would
    lose their meaning).
    """
    from saraikit.quality.listening import build_kit

    chosen = synthesized[synthesized["voice"].isin(systems)]
    shared = sorted(set.intersection(*(set(chosen.loc[chosen["voice"] == s, "text_id"]) for s in systems)))
    if not shared:
        raise DataError(f"no sentence was synthesized by all of {list(systems)}")
    texts = shared[:n_sentences]
    samples = [(row.voice, row.text_id, row.path) for row in chosen.itertuples() if row.text_id in texts]
    try:
        kit = build_kit(samples, kit_dir, seed=seed)
    except ConfigError as error:
        return None, f"not rebuilt: {error}"
    return kit, f"built {len(kit.sample_ids)} blinded samples ({', '.join(kit.systems)}; {len(texts)} sentences)"


def collect_ratings(ratings_dir: str | Path, key_csv: str | Path):
    """``(mos_table, message)`` from the ``ratings-*.csv`` files in ``ratings_dir``; table None when there are none."""
    from saraikit.quality.listening import mos_table, read_ratings

    files = sorted(Path(ratings_dir).glob("ratings-*.csv")) if Path(ratings_dir).is_dir() else []
    if not files:
        return None, f"no ratings yet (no ratings-*.csv in {ratings_dir}): there is no human MOS to show"
    if not Path(key_csv).is_file():
        return None, f"{len(files)} ratings file(s) found but the key {key_csv} is missing"
    ratings = read_ratings(files, key_csv)
    return mos_table(ratings), f"{len(ratings)} ratings from {ratings['rater'].nunique()} rater(s) in {len(files)} file(s)"


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
    audio = read_audio(speech_clip.path, target_sr=STT_SAMPLE_RATE)
    middle = audio.samples.size // 2
    _write_wav(folder / "silent.wav", np.zeros(STT_SAMPLE_RATE, dtype=np.float32), STT_SAMPLE_RATE)
    _write_wav(folder / "short.wav", audio.samples[middle:middle + STT_SAMPLE_RATE // 5], STT_SAMPLE_RATE)
    _write_wav(folder / "speech.wav", audio.samples, STT_SAMPLE_RATE)
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


def save_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            frame.to_csv(stream, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
