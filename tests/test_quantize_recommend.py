"""Judging candidates: latency rows against the baseline, the quality budget, prescreen and the recommendation rule."""

from __future__ import annotations

import numpy as np
import pytest

from saraikit.core.errors import ConfigError, DataError
from saraikit.experiments.quantize.recommend import QualityBudget, latency_row, prescreen, recommend


def bench_outcome(samples, ok=True):
    from saraikit.core import stats
    from saraikit.experiments import bench

    if not ok:
        return bench.BenchOutcome(False, None, None, "crashed: killed by signal 9", 7)
    raw = {"samples_ms": list(samples), "load_s": 0.25}
    return bench.BenchOutcome(True, stats.summarize(samples), raw, None, 3)


def test_latency_row_compares_with_the_baseline():
    rng = np.random.default_rng(0)
    base = list(100 + rng.normal(0, 2, 30))
    fast = list(60 + rng.normal(0, 2, 30))
    baseline = latency_row(bench_outcome(base), None)
    assert baseline["verdict"] == "baseline" and baseline["ratio"] == 1.0 and baseline["n"] == 30
    row = latency_row(bench_outcome(fast), base)
    assert row["verdict"] == "faster" and row["ratio"] == pytest.approx(np.median(fast) / np.median(base))
    assert row["ratio_ci_low"] < row["ratio"] < row["ratio_ci_high"] < 1
    assert row["p50_ci_low"] <= row["p50_ms"] <= row["p50_ci_high"] and row["load_s"] == 0.25
    failed = latency_row(bench_outcome(None, ok=False), base)
    assert failed["status"] == "failed" and "killed by signal 9" in failed["reason"]


def decision_table(**overrides):
    """A baseline and candidates covering every branch of the rule (one row per situation)."""
    import pandas as pd

    base = dict(status="ok", reason=None, cosine=0.995, snr_db=20.0, length_diff=0, max_delta_wer_pp=0.0)
    rows = [
        dict(candidate="fp32", role="baseline", p50_ms=100, ratio=1.0, ratio_ci_low=1.0, ratio_ci_high=1.0,
             verdict="baseline"),
        dict(candidate="fast", role="variant", p50_ms=70, ratio=0.7, ratio_ci_low=0.65, ratio_ci_high=0.75,
             verdict="faster"),
        dict(candidate="fastest-but-wrong", role="variant", p50_ms=50, ratio=0.5, ratio_ci_low=0.45,
             ratio_ci_high=0.55, verdict="faster", max_delta_wer_pp=3.5),
        dict(candidate="drifting", role="variant", p50_ms=60, ratio=0.6, ratio_ci_low=0.55, ratio_ci_high=0.65,
             verdict="faster", cosine=0.9, snr_db=8.0),
        dict(candidate="slow", role="variant", p50_ms=130, ratio=1.3, ratio_ci_low=1.2, ratio_ci_high=1.4,
             verdict="slower", max_delta_wer_pp=float("nan")),
        dict(candidate="same", role="variant", p50_ms=98, ratio=0.98, ratio_ci_low=0.9, ratio_ci_high=1.05,
             verdict="no significant difference"),
        dict(candidate="new-length", role="variant", p50_ms=80, ratio=0.8, ratio_ci_low=0.75, ratio_ci_high=0.85,
             verdict="faster", cosine=0.2, snr_db=-2.0, length_diff=512),
        dict(candidate="unmeasured", role="variant", p50_ms=65, ratio=0.65, ratio_ci_low=0.6, ratio_ci_high=0.7,
             verdict="faster", max_delta_wer_pp=float("nan")),
        dict(candidate="skipped", role="variant", status="skipped", reason="already quantized", p50_ms=float("nan"),
             ratio=float("nan"), ratio_ci_low=float("nan"), ratio_ci_high=float("nan"), verdict="failed"),
        dict(candidate="ct2-int8", role="reference", p50_ms=40, ratio=0.4, ratio_ci_low=0.35, ratio_ci_high=0.45,
             verdict="faster"),
        dict(candidate="fp32-again", role="control", p50_ms=101, ratio=1.01, ratio_ci_low=0.97, ratio_ci_high=1.04,
             verdict="no significant difference"),
    ]
    frame = pd.DataFrame([{**base, **row} for row in rows])
    for candidate, values in overrides.items():
        for key, value in values.items():
            frame.loc[frame["candidate"] == candidate, key] = value
    return frame


def test_recommend_rejects_with_every_reason_and_picks_the_fastest_accepted():
    budget = QualityBudget(max_wer_increase_pp=1.0, min_cosine=0.98, min_snr_db=15.0)
    rec = recommend(decision_table(), budget, "encoder")
    decided = rec.table.set_index("candidate")
    assert rec.variant == "fast" and "Recommended for encoder: fast" in rec.message
    assert decided["decision"].to_dict() == {
        "fp32": "baseline", "fast": "recommended", "fastest-but-wrong": "rejected", "drifting": "rejected",
        "slow": "rejected", "same": "accepted", "new-length": "accepted", "unmeasured": "rejected",
        "skipped": "skipped", "ct2-int8": "reference", "fp32-again": "control"}
    assert decided.loc["fastest-but-wrong", "why"] == "WER +3.5 pp > budget 1 pp"
    assert decided.loc["drifting", "why"] == "cosine 0.9000 < 0.98; SNR 8.0 dB < 15 dB"
    assert decided.loc["slow", "why"].startswith("slower than FP32 (P50 ratio 1.30, CI 1.20-1.40)")
    assert decided.loc["slow", "why"].endswith("; WER not measured (already rejected)")
    assert decided.loc["unmeasured", "why"] == "WER not measured"
    assert "judged on WER only" in decided.loc["new-length", "why"]  # low cosine ignored: the length changed
    assert decided.loc["skipped", "why"] == "already quantized"


def test_prescreen_names_what_rejects_a_variant_before_its_wer():
    table = decision_table()
    reasons = prescreen(table, QualityBudget(1.0, 0.98, 15.0))
    by_name = dict(zip(table["candidate"], reasons))
    assert by_name["drifting"] == "cosine 0.9000 < 0.98; SNR 8.0 dB < 15 dB"
    assert by_name["slow"].startswith("slower than FP32")
    # WER decides these: no speed or fidelity reason (new-length is not comparable on fidelity).
    assert all(by_name[c] == "" for c in ("fp32", "fast", "fastest-but-wrong", "same", "new-length", "unmeasured",
                                          "skipped", "ct2-int8", "fp32-again"))
    assert prescreen(table, QualityBudget(1.0, None, None))[table["candidate"] == "drifting"].item() == ""
    with pytest.raises(DataError, match="lacks column"):
        prescreen(table.drop(columns=["cosine"]), QualityBudget())


def test_recommend_says_plainly_when_no_variant_is_faster():
    slower = {"fast": {"verdict": "no significant difference"}, "new-length": {"verdict": "slower"},
              "drifting": {"verdict": "no significant difference"}}
    rec = recommend(decision_table(**slower), QualityBudget(1.0, 0.98, 15.0), "piper")
    assert rec.variant is None
    assert rec.message.startswith("No INT8 variant of piper is faster than FP32 on this CPU; keep FP32")
    assert "2 accepted variant(s) only save file size" in rec.message  # fast and same
    assert "recommended" not in set(rec.table["decision"])


def test_recommend_without_fidelity_gates_judges_on_wer_alone():
    rec = recommend(decision_table(), QualityBudget(1.0, None, None), "piper")
    assert rec.variant == "drifting"  # cosine 0.9 passes when fidelity is not gated; faster than "fast"


def test_quality_budget_and_recommend_reject_bad_input():
    with pytest.raises(ConfigError, match="min_cosine"):
        QualityBudget(min_cosine=1.5)
    with pytest.raises(ConfigError, match="max_wer_increase_pp"):
        QualityBudget(max_wer_increase_pp=None)
    with pytest.raises(ConfigError, match="unknown QualityBudget keys"):
        QualityBudget.from_dict({"max_wer": 1})
    table = decision_table()
    with pytest.raises(DataError, match="lacks column"):
        recommend(table.drop(columns=["verdict"]), QualityBudget(), "m")
    with pytest.raises(DataError, match="exactly one"):
        recommend(table[table["role"] != "baseline"], QualityBudget(), "m")
    with pytest.raises(DataError, match="roles must be"):
        recommend(table.replace({"role": {"reference": "engine"}}), QualityBudget(), "m")

