"""Task metrics of the candidates: Whisper transcripts with each encoder, Piper and Kokoro round trips, WER tables.

Decisions
---------
- WER uses greedy decoding (beam 1) for every row: the comparison is
  between encoders, and beam search would triple the decoding time. ONNX
  encoder rows decode with CTranslate2 at float32, so only the encoder
  differs between them; faster-whisper rows decode with
  :data:`FASTER_WHISPER_OPTIONS`, which match that decoding.
- Transcription runs CTranslate2 on one thread: the text does not depend on
  it, and two threads on a shared 2-core machine made float32 decoding an
  order of magnitude slower at times.
- A Piper variant is judged on its round trip (speak with the variant,
  transcribe with a fixed STT, WER against the sentence), a measure that
  does not care about audio length; the voice speaks with
  :data:`~saraikit.engines.quant_variants.PIPER_DETERMINISTIC_SCALES`.
- WER is reported per language, each normalised by its own rules, and each
  candidate is paired with the baseline on the same items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from saraikit.core.errors import DataError
from saraikit.data.audio import ensure_16k, read_16k
from saraikit.engines.ct2 import Ct2WhisperConfig
from saraikit.engines.kokoro import KokoroTTS
from saraikit.engines.piper import PiperTTS
from saraikit.engines.whisper import FasterWhisperSTT
from saraikit.engines.whisper_onnx import OnnxEncoderWhisper
from saraikit.engines.quant_variants import PIPER_DETERMINISTIC_SCALES
from saraikit.quality.transcribe import FASTER_WHISPER_OPTIONS  # the one decoding policy
from saraikit.quality.wer import paired_wer_difference, wer_report


def encoder_transcripts(ct2_dir: str | Path, encoder_path: str | Path, clips: Sequence,
                        beam_size: int = 1) -> list[str]:
    """Text of each clip through Whisper with the ONNX encoder ``encoder_path`` (FP32 or a variant).

    The decoder is CTranslate2 at float32 for every encoder, so only the encoder differs between rows."""
    stt = OnnxEncoderWhisper(ct2_dir, encoder_path, ct2_config=Ct2WhisperConfig(compute_type="float32", cpu_threads=1))
    return [stt.transcribe(read_16k(clip.path), language=clip.language, beam_size=beam_size).text for clip in clips]



def ct2_transcripts(ct2_dir: str | Path, clips: Sequence, compute_type: str = "int8", beam_size: int = 1) -> list[str]:
    """Text of each clip through faster-whisper at CTranslate2's ``compute_type``, one thread.

    Decoding options: :data:`FASTER_WHISPER_OPTIONS`."""
    texts = []
    for language in dict.fromkeys(clip.language for clip in clips):  # one stage per language, order kept below
        stt = FasterWhisperSTT(ct2_dir, Ct2WhisperConfig(compute_type=compute_type, cpu_threads=1), language=language,
                               beam_size=beam_size, transcribe_options=FASTER_WHISPER_OPTIONS)
        stt.load()
        texts += [(clip.id, stt.run(read_16k(clip.path)).value.text) for clip in clips if clip.language == language]
    by_id = dict(texts)
    return [by_id[clip.id] for clip in clips]


def piper_round_trip(voice_path: str | Path, sentences: Sequence[str], stt,
                     config_path: str | Path | None = None) -> list[str]:
    """Speak each sentence with the Piper voice at ``voice_path`` (scales [0, 1, 0]) and transcribe it with ``stt``.

    ``stt`` is a loaded 16 kHz STT stage (e.g. ``saraikit.engines.whisper.FasterWhisperSTT``);
    ``config_path`` is the voice's ``.onnx.json`` (a variant has none of its own: pass the FP32 voice's)."""
    noise_scale, length_scale, noise_w = PIPER_DETERMINISTIC_SCALES
    tts = PiperTTS(voice_path, config_path=config_path, noise_scale=noise_scale, length_scale=length_scale,
                   noise_w=noise_w)
    tts.load()
    return [stt.run(ensure_16k(tts.run(sentence).value)).value.text for sentence in sentences]


def kokoro_round_trip(model_path: str | Path, sentences: Sequence[str], stt, language: str = "en") -> list[str]:
    """Speak each sentence with the Kokoro model at ``model_path`` (default style, speed 1) and transcribe it.

    Kokoro has no noise input, so its audio is the same on every run."""
    tts = KokoroTTS(model_path, language=language)
    tts.load()
    return [stt.run(ensure_16k(tts.run(sentence).value)).value.text for sentence in sentences]


def wer_reports(ids: Sequence[str], references: Sequence[str], hypotheses: Sequence[str],
                languages: Sequence[str]) -> dict:
    """One ``saraikit.quality.wer.WerReport`` per language (each normalised by its own rules)."""
    if not len(ids) == len(references) == len(hypotheses) == len(languages):
        raise DataError(f"wer_reports: {len(ids)} ids, {len(references)} references, {len(hypotheses)} hypotheses "
                        f"and {len(languages)} languages; they must line up")
    reports = {}
    for language in dict.fromkeys(languages):
        keep = [i for i, lang in enumerate(languages) if lang == language]
        reports[language] = wer_report([references[i] for i in keep], [hypotheses[i] for i in keep],
                                       [ids[i] for i in keep], language)
    return reports


def wer_table(reports: Mapping[str, Mapping[str, Any]], baseline: str = "fp32") -> pd.DataFrame:
    """One row per (candidate, dataset): WER with CI and the paired difference to ``baseline``, in points.

    ``reports`` maps a candidate name to {dataset: WerReport}; the baseline
    must cover every dataset a candidate has."""
    if baseline not in reports:
        raise DataError(f"wer_table: no reports for the baseline {baseline!r}; candidates: {sorted(reports)}")
    rows = []
    for name, by_dataset in reports.items():
        for dataset, report in by_dataset.items():
            if dataset not in reports[baseline]:
                raise DataError(f"wer_table: the baseline {baseline!r} has no report for dataset {dataset!r}")
            diff = paired_wer_difference(reports[baseline][dataset], report)
            rows.append({"candidate": name, "dataset": dataset, "n": report.n, "words": report.n_words,
                         "wer_pct": 100 * report.wer, "wer_ci_low": 100 * report.wer_ci.low,
                         "wer_ci_high": 100 * report.wer_ci.high, "delta_wer_pp": 100 * diff.diff,
                         "delta_ci_low": 100 * diff.ci_low, "delta_ci_high": 100 * diff.ci_high})
    return pd.DataFrame(rows, columns=["candidate", "dataset", "n", "words", "wer_pct", "wer_ci_low", "wer_ci_high",
                                       "delta_wer_pp", "delta_ci_low", "delta_ci_high"])
