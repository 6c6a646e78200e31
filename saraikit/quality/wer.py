"""Word and character error rates with confidence intervals.

``wer_report(references, hypotheses, ids, language)`` scores one STT system
on a set of utterances with jiwer (``process_words``/``process_characters``)
and returns a :class:`WerReport`: corpus WER and CER on normalised text
(:func:`saraikit.textnorm.normalize` on both sides) beside the same figures on
the raw text, one row per utterance, and a bootstrap CI.

Decisions:

- Corpus WER is ``sum(S + D + I) / sum(reference words)`` over utterances,
  not the mean of per-utterance WERs (which would let a one-word prompt weigh
  as much as a paragraph).  CER is the same over characters; like jiwer's
  default, spaces count as characters.
- "Raw" figures use jiwer's default transform only (collapse and strip
  spaces): case, punctuation, digits and accents all count.  Raw and
  normalised figures are computed on the same utterances so the columns can
  be compared.
- The CI resamples *utterances* with replacement and recomputes the corpus
  ratio each time (errors are correlated within an utterance, so words are
  not independent draws).  This reuses :func:`saraikit.stats.bootstrap_ci`:
  the values it resamples are utterance indices, and the statistic sums
  errors and words over the drawn indices.  Seeded, so a report is
  reproducible; 95 % percentile interval, 2000 resamples by default.
- ``paired_wer_difference(a, b)`` resamples the same utterance indices for
  both systems, so the CI is that of ``WER(b) - WER(a)`` on matched
  utterances (much tighter than comparing two independent CIs).  Both
  reports must cover the same ids with the same normalised references.
- Nothing is dropped silently.  An empty reference, or one that normalises to
  nothing (``"..."``), cannot be scored: it goes to ``report.skipped`` with
  its reason and is counted in the summary.  An empty hypothesis is scored:
  every reference word is a deletion.
- ``worst(report, k)`` orders utterances by their error count (their share
  of the corpus WER), then by utterance WER, and shows jiwer's alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jiwer
import numpy as np
import pandas as pd

from saraikit.core.errors import DataError, MeasurementError
from saraikit.core.stats import ConfidenceInterval, PairedDifference, bootstrap_ci
from saraikit.core.store import Figure
from saraikit.data.textnorm import normalize as normalize_text

__all__ = [
    "EMPTY_REFERENCE",
    "NORMALIZES_TO_NOTHING",
    "WerReport",
    "format_worst",
    "paired_wer_difference",
    "wer_report",
    "worst",
]

# Reasons an utterance is skipped (the values of report.skipped["reason"]).
EMPTY_REFERENCE = "empty reference"
NORMALIZES_TO_NOTHING = "reference normalizes to nothing"

ROW_COLUMNS = [
    "id", "reference", "hypothesis", "ref_norm", "hyp_norm",
    "ref_words", "substitutions", "deletions", "insertions", "hits", "errors", "wer",
    "ref_chars", "char_errors", "cer",
    "raw_ref_words", "raw_errors", "raw_ref_chars", "raw_char_errors",
]


@dataclass
class WerReport:
    """One system's error rates on one set of utterances.

    ``wer``/``cer`` are on normalised text (on raw text when the report was
    built with ``normalize=False``); ``raw_wer``/``raw_cer`` always on raw text.
    """

    language: str
    normalized: bool
    rows: pd.DataFrame  # one row per scored utterance, columns ROW_COLUMNS
    skipped: pd.DataFrame  # id, reference, reason
    wer: float
    cer: float
    raw_wer: float
    raw_cer: float
    wer_ci: ConfidenceInterval
    cer_ci: ConfidenceInterval

    @property
    def n(self) -> int:
        """Number of scored utterances."""
        return len(self.rows)

    @property
    def n_words(self) -> int:
        return int(self.rows["ref_words"].sum())

    def skipped_counts(self) -> dict[str, int]:
        return self.skipped["reason"].value_counts().to_dict()

    def corpus_frame(self) -> pd.DataFrame:
        """WER and CER, raw beside normalised, with the CI of the normalised figure."""
        return pd.DataFrame(
            {
                "raw": [self.raw_wer, self.raw_cer],
                "normalized": [self.wer, self.cer],
                "ci_low": [self.wer_ci.low, self.cer_ci.low],
                "ci_high": [self.wer_ci.high, self.cer_ci.high],
                "n_utterances": [self.n, self.n],
            },
            index=pd.Index(["WER", "CER"], name="metric"),
        )

    def summary(self) -> str:
        confidence = round(self.wer_ci.confidence * 100)
        text = "normalized" if self.normalized else "raw"
        line = (
            f"WER {self.wer:.1%} [{confidence}% CI {self.wer_ci.low:.1%}, {self.wer_ci.high:.1%}] "
            f"({text}; raw {self.raw_wer:.1%}), CER {self.cer:.1%} (raw {self.raw_cer:.1%}); "
            f"n = {self.n} utterances, {self.n_words} words"
        )
        skipped = ", ".join(f"{reason}: {count}" for reason, count in self.skipped_counts().items())
        return line + (f"; skipped {len(self.skipped)} ({skipped})" if skipped else "")

    def figures(self) -> list[Figure]:
        """The corpus figures for :class:`saraikit.store.Trial` (unit "fraction": 0.1 = 10 %)."""
        extra = {
            "language": self.language,
            "normalized": self.normalized,
            "n_words": self.n_words,
            "n_skipped": len(self.skipped),
            "skipped": self.skipped_counts(),
        }

        def with_ci(ci: ConfidenceInterval) -> dict:
            return {**extra, "ci_low": ci.low, "ci_high": ci.high, "confidence": ci.confidence, "n_boot": ci.n_boot}

        return [
            Figure("wer", self.wer, "fraction", self.n, "measured", with_ci(self.wer_ci)),
            Figure("cer", self.cer, "fraction", self.n, "measured", with_ci(self.cer_ci)),
            Figure("wer_raw", self.raw_wer, "fraction", self.n, "measured", dict(extra)),
            Figure("cer_raw", self.raw_cer, "fraction", self.n, "measured", dict(extra)),
        ]


# --------------------------------------------------------------------------
# scoring


def _check_inputs(references: Sequence, hypotheses: Sequence, ids: Sequence) -> list[str]:
    references, hypotheses, ids = list(references), list(hypotheses), [str(i) for i in ids]
    if not len(references) == len(hypotheses) == len(ids):
        raise DataError(
            f"references, hypotheses and ids must have the same length, got "
            f"{len(references)}, {len(hypotheses)} and {len(ids)}"
        )
    if not ids:
        raise DataError("no utterances to score: references, hypotheses and ids are empty")
    duplicates = sorted(pd.Series(ids)[pd.Series(ids).duplicated()].unique())
    if duplicates:
        raise DataError(f"utterance ids must be unique; repeated: {', '.join(duplicates[:5])}")
    for kind, texts in (("reference", references), ("hypothesis", hypotheses)):
        for utterance_id, text in zip(ids, texts):
            if not isinstance(text, str):
                raise DataError(
                    f"utterance {utterance_id!r}: {kind} must be a str (use '' for an empty "
                    f"transcript), got {type(text).__name__}"
                )
    return ids


def _word_counts(reference: str, hypothesis: str) -> dict:
    out = jiwer.process_words(reference, hypothesis)
    errors = out.substitutions + out.deletions + out.insertions
    words = out.substitutions + out.deletions + out.hits
    return {
        "ref_words": words, "substitutions": out.substitutions, "deletions": out.deletions,
        "insertions": out.insertions, "hits": out.hits, "errors": errors,
    }


def _char_counts(reference: str, hypothesis: str) -> tuple[int, int]:
    out = jiwer.process_characters(reference, hypothesis)
    return out.substitutions + out.deletions + out.hits, out.substitutions + out.deletions + out.insertions


def _score(utterance_id: str, reference: str, hypothesis: str, ref_norm: str, hyp_norm: str) -> dict:
    words = _word_counts(ref_norm, hyp_norm)
    ref_chars, char_errors = _char_counts(ref_norm, hyp_norm)
    raw = _word_counts(reference, hypothesis)
    raw_ref_chars, raw_char_errors = _char_counts(reference, hypothesis)
    return {
        "id": utterance_id, "reference": reference, "hypothesis": hypothesis,
        "ref_norm": ref_norm, "hyp_norm": hyp_norm,
        **words, "wer": words["errors"] / words["ref_words"],
        "ref_chars": ref_chars, "char_errors": char_errors, "cer": char_errors / ref_chars,
        "raw_ref_words": raw["ref_words"], "raw_errors": raw["errors"],
        "raw_ref_chars": raw_ref_chars, "raw_char_errors": raw_char_errors,
    }


def _ratio_of_sums(numerators: np.ndarray, denominators: np.ndarray):
    """A bootstrap statistic: resampled utterance indices -> sum(numerators) / sum(denominators)."""

    def statistic(indices, axis=-1):
        drawn = np.asarray(indices, dtype=int)
        return numerators[drawn].sum(axis=axis) / denominators[drawn].sum(axis=axis)

    return statistic


def _corpus_ci(rows: pd.DataFrame, errors: str, total: str, confidence: float, n_boot: int, seed: int | None):
    statistic = _ratio_of_sums(rows[errors].to_numpy(float), rows[total].to_numpy(float))
    return bootstrap_ci(np.arange(len(rows)), statistic, confidence, n_boot, seed)


def _ratio(rows: pd.DataFrame, errors: str, total: str) -> float:
    return float(rows[errors].sum() / rows[total].sum())


def wer_report(
    references: Sequence[str],
    hypotheses: Sequence[str],
    ids: Sequence,
    language: str,
    normalize: bool = True,
    fold_accents: bool | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int | None = 0,
) -> WerReport:
    """Score ``hypotheses`` against ``references`` (same order, one per id).

    ``normalize=True`` applies :func:`saraikit.textnorm.normalize` with
    ``language`` and ``fold_accents`` to both sides.  Raises DataError when
    the inputs do not line up or when no utterance can be scored.
    """
    ids = _check_inputs(references, hypotheses, ids)
    rows, skipped = [], []
    for utterance_id, reference, hypothesis in zip(ids, references, hypotheses):
        if not reference.strip():
            skipped.append({"id": utterance_id, "reference": reference, "reason": EMPTY_REFERENCE})
            continue
        if normalize:
            ref_norm = normalize_text(reference, language, fold_accents)
            hyp_norm = normalize_text(hypothesis, language, fold_accents)
        else:
            ref_norm, hyp_norm = " ".join(reference.split()), " ".join(hypothesis.split())
        if not ref_norm:
            skipped.append({"id": utterance_id, "reference": reference, "reason": NORMALIZES_TO_NOTHING})
            continue
        rows.append(_score(utterance_id, reference, hypothesis, ref_norm, hyp_norm))

    skipped_frame = pd.DataFrame(skipped, columns=["id", "reference", "reason"])
    if not rows:
        reasons = skipped_frame["reason"].value_counts().to_dict()
        raise DataError(f"no utterance could be scored: all {len(ids)} were skipped ({reasons})")
    frame = pd.DataFrame(rows, columns=ROW_COLUMNS)
    return WerReport(
        language=language,
        normalized=normalize,
        rows=frame,
        skipped=skipped_frame,
        wer=_ratio(frame, "errors", "ref_words"),
        cer=_ratio(frame, "char_errors", "ref_chars"),
        raw_wer=_ratio(frame, "raw_errors", "raw_ref_words"),
        raw_cer=_ratio(frame, "raw_char_errors", "raw_ref_chars"),
        wer_ci=_corpus_ci(frame, "errors", "ref_words", confidence, n_boot, seed),
        cer_ci=_corpus_ci(frame, "char_errors", "ref_chars", confidence, n_boot, seed),
    )


# --------------------------------------------------------------------------
# comparing two systems


def _matched_rows(baseline: WerReport, candidate: WerReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    base = baseline.rows.set_index("id")
    cand = candidate.rows.set_index("id")
    only_base = sorted(set(base.index) - set(cand.index))
    only_cand = sorted(set(cand.index) - set(base.index))
    if only_base or only_cand:
        raise MeasurementError(
            "paired WER needs the same scored utterances in both reports; "
            f"only in baseline: {only_base[:5]} ({len(only_base)}), "
            f"only in candidate: {only_cand[:5]} ({len(only_cand)})"
        )
    cand = cand.loc[base.index]
    differing = base.index[base["ref_norm"] != cand["ref_norm"]]
    if len(differing):
        raise MeasurementError(
            f"paired WER needs the same references; {len(differing)} utterance(s) differ, "
            f"e.g. {differing[0]!r}: {base.loc[differing[0], 'ref_norm']!r} vs "
            f"{cand.loc[differing[0], 'ref_norm']!r}"
        )
    return base, cand


def paired_wer_difference(
    baseline: WerReport,
    candidate: WerReport,
    confidence: float = 0.95,
    n_boot: int = 5000,
    seed: int | None = 0,
) -> PairedDifference:
    """``WER(candidate) - WER(baseline)`` (corpus WERs) with a paired bootstrap CI.

    Utterances are resampled once per draw and both systems are scored on the
    same draw.  A positive ``diff`` means the candidate makes more errors;
    ``significant`` is True when the CI excludes 0.
    """
    base, cand = _matched_rows(baseline, candidate)
    base_wer = _ratio_of_sums(base["errors"].to_numpy(float), base["ref_words"].to_numpy(float))
    cand_wer = _ratio_of_sums(cand["errors"].to_numpy(float), cand["ref_words"].to_numpy(float))

    def difference(indices, axis=-1):
        return cand_wer(indices, axis) - base_wer(indices, axis)

    interval = bootstrap_ci(np.arange(len(base)), difference, confidence, n_boot, seed)
    return PairedDifference(interval.estimate, interval.low, interval.high, interval.confidence, interval.n)


# --------------------------------------------------------------------------
# looking at errors


def _alignment(utterance_id: str, ref_norm: str, hyp_norm: str) -> str:
    output = jiwer.process_words(ref_norm, hyp_norm)
    text = jiwer.visualize_alignment(output, show_measures=False, skip_correct=False)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("=== SENTENCE")]
    return "\n".join([f"[{utterance_id}]", *lines])


def worst(report: WerReport, k: int = 5) -> pd.DataFrame:
    """The ``k`` utterances with the most errors, with a jiwer alignment each.

    Utterances without errors are never listed, so a perfect system gives an
    empty frame.  Columns: those of ``report.rows`` plus ``alignment``.
    """
    if not isinstance(k, int) or k < 1:
        raise MeasurementError(f"k must be a positive integer, got {k!r}")
    wrong = report.rows[report.rows["errors"] > 0]
    top = wrong.sort_values(["errors", "wer", "id"], ascending=[False, False, True]).head(k).copy()
    top["alignment"] = [
        _alignment(row.id, row.ref_norm, row.hyp_norm) for row in top.itertuples(index=False)
    ]
    return top.reset_index(drop=True)


def format_worst(report: WerReport, k: int = 5) -> str:
    """The alignments of :func:`worst` as one printable block."""
    top = worst(report, k)
    if top.empty:
        return "no errors"
    blocks = [f"{row.alignment}\n({row.errors} errors, WER {row.wer:.0%})" for row in top.itertuples()]
    return "\n\n".join(blocks)
