"""The tables a quality run shows, assembled from its results: speech sets, systems, pairs, round trip, bad input.

Decisions:

- The paired comparisons (:func:`comparison_pairs`) are fixed questions:
  INT8 against float32 CTranslate2 (the quantization), float32 CTranslate2
  against the ONNX FP32 encoder (the runtime), tiny.en against base (the
  model size), and each ONNX INT8 encoder against ONNX FP32. A pair with a
  system that did not run is left out.
- Round-trip and bad-input tables state counts and reasons; nothing is
  dropped silently.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from saraikit.data.datasets import Dataset
from saraikit.quality.stt_eval import AccuracyRun, SttScore, Utterance, percent
from saraikit.quality.transcribe import SttSystem
from saraikit.quality.wer import format_worst

BASE_PAIRS = (("whisper-base int8", "whisper-base float32"), ("whisper-base float32", "whisper-base onnx-fp32"),
              ("whisper-tiny.en int8", "whisper-base int8"))
ONNX_FP32 = "whisper-base onnx-fp32"


def datasets_table(built_in: Mapping[str, Dataset]) -> pd.DataFrame:
    """Clips, minutes, sample rates and dropped clips per built-in dataset."""
    return pd.DataFrame([{"dataset": name, "clips": len(d.clips), "minutes": sum(c.duration_s for c in d.clips) / 60,
                          "sample_rate_hz": sorted({c.sample_rate for c in d.clips}), "dropped": len(d.dropped)}
                         for name, d in built_in.items()]).round(1)


def dropped_table(built_in: Mapping[str, Dataset]) -> pd.DataFrame:
    """Dropped clips per reason (rows) and dataset (columns)."""
    return pd.DataFrame({name: d.dropped_counts() for name, d in built_in.items()}).fillna(0).astype(int)


def sets_table(sets: Mapping[str, Sequence[Utterance]]) -> pd.DataFrame:
    """Language, utterances, total and median seconds per scored set."""
    return pd.DataFrame([{"set": name, "language": items[0].language, "utterances": len(items),
                          "seconds": sum(u.duration_s for u in items),
                          "median_s": float(np.median([u.duration_s for u in items]))}
                         for name, items in sets.items()])


def systems_table(systems: Sequence[SttSystem]) -> pd.DataFrame:
    """Backend, compute type, encoder, languages and short sha256 per STT system."""
    return pd.DataFrame([{"system": s.label, "backend": s.backend, "compute_type": s.compute_type,
                          "encoder": s.encoder.name if s.encoder else "",
                          "languages": "en" if s.english_only else "en, es", "sha256": s.sha256()[:12]}
                         for s in systems])


def worst_utterances_text(accuracy: AccuracyRun, systems: Sequence[str], k: int) -> str:
    """Per (system, dataset) of ``systems``: the summary line and the ``k`` worst alignments."""
    blocks = [f"===== {label} on {dataset}: {result.report.summary()}\n{format_worst(result.report, k)}\n"
              for (label, dataset), result in accuracy.scores.items() if label in systems]
    return "\n".join(blocks)


WORST_COLUMNS = ["id", "reference", "hypothesis", "ref_words", "errors", "wer", "cer"]


def worst_rows(result: SttScore, n: int = 12) -> pd.DataFrame:
    """The ``n`` utterances with the most errors (then the highest WER), reference beside hypothesis."""
    return result.report.rows.sort_values(["errors", "wer"], ascending=False)[WORST_COLUMNS].head(n)


def snr_check_line(noise_table: pd.DataFrame) -> str:
    """How far the measured SNR of the mixtures strays from the requested one, over every noisy condition."""
    noisy = noise_table[noise_table["noise"] != "clean"]
    error = (noisy["measured_snr_db"] - noisy["snr_db"]).abs().max() if len(noisy) else float("nan")
    return f"largest |measured - requested SNR| over {len(noisy)} conditions: {error:.4f} dB"


def comparison_pairs(labels: Sequence[str]) -> list[tuple[str, str]]:
    """(baseline, candidate) pairs among ``labels`` (see the module docstring)."""
    pairs = list(BASE_PAIRS) + [(ONNX_FP32, label) for label in labels if "onnx-int8" in label]
    return [(a, b) for a, b in pairs if a in labels and b in labels]


def paired_table(accuracy: AccuracyRun, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """:meth:`AccuracyRun.paired` of every pair, stacked (empty when no pair shares a dataset)."""
    frames = [accuracy.paired(a, b) for a, b in pairs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def round_trip_table(trips: Mapping[str, SttScore]) -> pd.DataFrame:
    """One row per voice: sentences, words, WER with CI, CER and raw WER of its round trip (percent)."""
    rows = []
    for voice, result in trips.items():
        r = result.report
        rows.append({"voice": voice, "language": r.language, "sentences": r.n, "words": r.n_words,
                     "wer_%": percent(r.wer), "ci_low": percent(r.wer_ci.low), "ci_high": percent(r.wer_ci.high),
                     "cer_%": percent(r.cer), "wer_raw_%": percent(r.raw_wer)})
    return pd.DataFrame(rows)


def bad_input_table(bad_set: Dataset, bad_score: SttScore) -> pd.DataFrame:
    """Every bad-input row the loader dropped or the scorer skipped, with its stage and reason."""
    dropped = pd.DataFrame([{"id": d.id, "stage": "dataset", "reason": d.reason, "detail": d.detail}
                            for d in bad_set.dropped])
    return pd.concat([dropped, bad_score.skipped()[["id", "stage", "reason"]]], ignore_index=True)


def skipped_table(accuracy: AccuracyRun) -> pd.DataFrame:
    """Skipped utterances per reason, per (system, dataset) of the accuracy run that skipped any."""
    return pd.DataFrame([{"system": label, "dataset": dataset, **result.skipped_counts()}
                         for (label, dataset), result in accuracy.scores.items() if len(result.skipped())])
