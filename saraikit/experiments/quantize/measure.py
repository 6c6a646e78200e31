"""Measuring the candidates of one model: latency in fresh processes, and WER (or a TTS round trip).

Decisions
---------
- Candidates are timed one after the other, FP32 first, each in its own
  process on the same real feed; the CTranslate2 compute types of a Whisper
  encoder follow as "reference" rows, and FP32 is timed again last as the
  "control" row (a drift of the machine's speed shows as its ratio).
- A failed FP32 benchmark stops the model: nothing can be compared with it.
- WER is measured for the baseline, the references and every ok variant not
  already rejected before WER (``rejected_before_wer``), unless
  ``wer_for_rejected``; the control row is never transcribed.
- The Piper round trip transcribes with one CTranslate2 thread at float32,
  like the other WER paths of the quantize package; so does Kokoro's
  (:func:`round_trip_wer` picks the voice's round trip by the model's kind).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from saraikit.core.errors import ConfigError
from saraikit.core.progress import progress
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.whisper import FasterWhisperSTT
from saraikit.experiments import bench, realinputs
from saraikit.experiments.quantize import ct2bench, fidelity, tasks
from saraikit.experiments.quantize.recommend import candidates, latency_row
from saraikit.models import catalog
from saraikit.quality import transcribe


def _bench(path: Path, feed, plan: Mapping, store, run_id: str, sha: bool = True):
    spec = bench.OnnxBench(str(path), plan=plan, feeds=feed)
    return bench.bench_onnx(spec, store, run_id, experiment="quantization", model_name=path.stem,
                            model_sha256=catalog.sha256_file(path) if sha else None)


def _samples(outcome):
    return outcome.raw["samples_ms"] if outcome.ok else None


def time_candidates(name: str, source: Path, quant_frame: pd.DataFrame, feed, plan: Mapping, store, run_id: str,
                    ct2_compute_types: Sequence[str] = ()) -> tuple[list[dict], dict]:
    """Latency rows of one model (baseline, variants, references, control) and the samples per candidate."""
    rows, samples, baseline = [], {}, None
    for candidate, path in progress(candidates(source, quant_frame).items(), desc=name):
        outcome = _bench(path, feed, plan, store, run_id)
        if candidate == "fp32" and not outcome.ok:
            raise RuntimeError(f"FP32 benchmark of {name} failed, nothing to compare with: {outcome.error}")
        role = "baseline" if candidate == "fp32" else "variant"
        rows.append({"model": name, "candidate": candidate, "role": role, "path": str(path),
                     **latency_row(outcome, baseline)})
        samples[name, candidate] = _samples(outcome)
        baseline = samples[name, "fp32"]
    for compute_type in ct2_compute_types:
        outcome = ct2bench.bench_ct2_encoder(catalog.model_path(name), feed, compute_type, plan, store, run_id,
                                             model_name=f"{name}:ct2-{compute_type}")
        rows.append({"model": name, "candidate": f"ct2-{compute_type}", "role": "reference", "path": None,
                     **latency_row(outcome, baseline)})
        samples[name, f"ct2-{compute_type}"] = _samples(outcome)
    outcome = _bench(source, feed, plan, store, run_id, sha=False)  # drift check: FP32 again, last
    rows.append({"model": name, "candidate": "fp32-again", "role": "control", "path": str(source),
                 **latency_row(outcome, baseline)})
    return rows, samples


def compare_fidelity(name: str, source: Path, quant_frame: pd.DataFrame, n_feeds: int) -> dict:
    """``{variant: OutputComparison}`` of the ok variants against FP32 on ``n_feeds`` held-out real feeds."""
    variant_paths = {c: p for c, p in candidates(source, quant_frame).items() if c != "fp32"}
    if not variant_paths:
        return {}
    return fidelity.compare_many(source, variant_paths, realinputs.real_feeds(name, n_feeds))


def rows_to_transcribe(table: pd.DataFrame, name: str, wer_for_rejected: bool = False) -> list:
    """The ok rows of ``name`` whose WER is measured (see the module docstring)."""
    rows = table[(table["model"] == name) & (table["status"] == "ok")]
    return [row for row in rows.itertuples()
            if row.role != "control" and (wer_for_rejected or not row.rejected_before_wer)]


def encoder_wer(name: str, rows: Sequence, sizes: Mapping[str, int]) -> dict:
    """``{candidate: {evaluation set: WerReport}}`` of a Whisper encoder's rows on recorded speech."""
    counts = {"en": sizes["wer_en_n"], "es": sizes["wer_es_n"]}
    clips = [clip for lang in realinputs.ENCODER_LANGUAGES[name] if counts[lang]  # whisper-tiny.en: English only
             for clip in realinputs.speech_clips(lang, "evaluation", counts[lang])]
    ids, refs, langs = [c.id for c in clips], [c.reference for c in clips], [c.language for c in clips]
    reports = {}
    for row in progress(rows, desc=f"WER {name}"):
        if row.role == "reference":
            texts = tasks.ct2_transcripts(catalog.model_path(name), clips, row.candidate.removeprefix("ct2-"))
        else:
            texts = tasks.encoder_transcripts(catalog.model_path(name), row.path, clips)
        by_language = tasks.wer_reports(ids, refs, texts, langs)
        reports[row.candidate] = {realinputs.EVALUATION_SETS[k]: v for k, v in by_language.items()}
    return reports


def _english_asr(asr_model: str) -> FasterWhisperSTT:
    asr = FasterWhisperSTT(catalog.model_path(asr_model), Ct2WhisperConfig(compute_type="float32", cpu_threads=1),
                           language="en", beam_size=1, transcribe_options=transcribe.FASTER_WHISPER_OPTIONS)
    asr.load()
    return asr


def _tts_wer(name: str, rows: Sequence, n_sentences: int, asr_model: str, speak) -> dict:
    """``{candidate: {"round trip en": WerReport}}``: ``speak(row, sentences, asr)`` gives each row's transcripts."""
    sentences = realinputs.sentences(n_sentences)
    asr = _english_asr(asr_model)
    ids = [f"s{i:02d}" for i in range(len(sentences))]
    reports = {}
    for row in progress(rows, desc=f"round trip {name}"):
        texts = speak(row, sentences, asr)
        reports[row.candidate] = {"round trip en": tasks.wer_reports(ids, sentences, texts, ["en"] * len(ids))["en"]}
    return reports


def piper_wer(name: str, source: Path, rows: Sequence, n_sentences: int, asr_model: str) -> dict:
    """``{candidate: {"round trip en": WerReport}}``: each row speaks the sentences, ``asr_model`` transcribes."""
    voice_config = source.with_name(source.name + ".json")
    return _tts_wer(name, rows, n_sentences, asr_model,
                    lambda row, sentences, asr: tasks.piper_round_trip(row.path, sentences, asr, voice_config))


def kokoro_wer(name: str, rows: Sequence, n_sentences: int, asr_model: str) -> dict:
    """Kokoro's round trip in English, one report per row (the int8 model as shipped is the only row)."""
    return _tts_wer(name, rows, n_sentences, asr_model,
                    lambda row, sentences, asr: tasks.kokoro_round_trip(row.path, sentences, asr, "en"))


def round_trip_wer(name: str, kind: str, source: Path, rows: Sequence, n_sentences: int, asr_model: str) -> dict:
    """The round trip of a TTS model of ``kind`` ("piper" or "kokoro", from ``realinputs.recipe``)."""
    if kind == "kokoro":
        return kokoro_wer(name, rows, n_sentences, asr_model)
    if kind == "piper":
        return piper_wer(name, source, rows, n_sentences, asr_model)
    raise ConfigError(f"round_trip_wer: {name!r} is a {kind!r} model; only piper and kokoro voices have a round trip")
