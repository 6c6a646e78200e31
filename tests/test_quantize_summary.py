"""Notebook 01's summary: the candidate table, the summary table, the conclusion lines, the records and the figure.

Small synthetic frames shaped like the notebook's (latency rows, fidelity,
``quantize_all`` frames, ``wer_table`` rows); the recommendations come from
the real rule, so the sentences are checked against what it decided.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from saraikit.experiments.quantize import summary
from saraikit.experiments.quantize.fidelity import OutputComparison
from saraikit.experiments.quantize.recommend import QualityBudget, recommend
from saraikit.experiments.quantize.table import candidate_table, fidelity_frame, with_worst_delta

MODEL = "whisper-tiny.en"
BUDGET = QualityBudget(max_wer_increase_pp=2.0, min_cosine=0.95, min_snr_db=10.0)


def latency_frame(control_verdict="no significant difference", fp32_path="fp32.onnx"):
    def row(candidate, role, p50, ratio, low, high, verdict, path=None):
        return {"model": MODEL, "candidate": candidate, "role": role, "path": path, "status": "ok", "reason": None,
                "n": 10, "load_s": 0.3, "p50_ms": p50, "p50_ci_low": p50 * 0.98, "p50_ci_high": p50 * 1.02,
                "ratio": ratio, "ratio_ci_low": low, "ratio_ci_high": high, "verdict": verdict, "trial_id": 1}
    control_ratio = (1.0, 0.95, 1.05) if control_verdict == "no significant difference" else (1.3, 1.2, 1.4)
    return pd.DataFrame([
        row("fp32", "baseline", 200.0, 1.0, 1.0, 1.0, "baseline", fp32_path),
        row("dynamic-s8", "variant", 120.0, 0.6, 0.55, 0.65, "faster", "s8.onnx"),
        row("dynamic-u8", "variant", 150.0, 0.75, 0.7, 0.8, "faster", "u8.onnx"),
        row("ct2-int8", "reference", 100.0, 0.5, 0.45, 0.55, "faster"),
        row("fp32-again", "control", 200.0 * control_ratio[0], *control_ratio, control_verdict, fp32_path),
    ])


def comparison(cosine, snr):
    return OutputComparison([], 4, cosine, cosine - 0.01, snr, snr - 1, 0.1, 0.01, 0, True)


def quant_frames():
    return {MODEL: pd.DataFrame({"name": ["dynamic-s8", "dynamic-u8"], "bytes": [10_000_000, 11_000_000],
                                 "size_ratio": [0.26, 0.29], "ok": [True, True]})}


def wer_frame(s8_delta=(0.5, -0.5, 1.5), u8_delta=(3.5, 2.6, 4.4)):
    def row(candidate, wer, delta):
        return {"model": MODEL, "candidate": candidate, "dataset": "librivox_en", "n": 10, "words": 120,
                "wer_pct": wer, "wer_ci_low": wer - 2, "wer_ci_high": wer + 2, "delta_wer_pp": delta[0],
                "delta_ci_low": delta[1], "delta_ci_high": delta[2]}
    return pd.DataFrame([row("fp32", 6.0, (0.0, 0.0, 0.0)), row("dynamic-s8", 6.5, s8_delta),
                         row("dynamic-u8", 9.5, u8_delta), row("ct2-int8", 6.2, (0.2, -1.0, 1.4))])


def decided_run(tmp_path, control_verdict="no significant difference", **wer_kw):
    fp32 = tmp_path / "fp32.onnx"
    fp32.write_bytes(b"x" * 4000)
    fidelity = fidelity_frame({MODEL: {"dynamic-s8": comparison(0.99, 20.0), "dynamic-u8": comparison(0.98, 18.0)}})
    table = candidate_table(latency_frame(control_verdict, str(fp32)), fidelity, quant_frames(), {MODEL: BUDGET})
    wer = wer_frame(**wer_kw)
    rec = recommend(with_worst_delta(table, wer), BUDGET, MODEL)
    return {MODEL: rec}, rec.table, wer


def test_candidate_table_joins_sizes_fidelity_and_the_prescreen(tmp_path):
    _, decided, _ = decided_run(tmp_path)
    by = decided.set_index("candidate")
    assert by.loc["fp32", "bytes"] == 4000 and by.loc["fp32", "size_ratio"] == 1.0
    assert by.loc["fp32", "length_diff"] == 0
    assert by.loc["dynamic-s8", "bytes"] == 10_000_000 and by.loc["dynamic-s8", "cosine"] == pytest.approx(0.99)
    assert pd.isna(by.loc["ct2-int8", "bytes"])  # a reference row has no file of its own
    assert (by["rejected_before_wer"] == "").all()
    assert by.loc["dynamic-u8", "max_delta_wer_pp"] == 3.5 and pd.isna(by.loc["fp32-again", "max_delta_wer_pp"])


def test_summary_table_writes_intervals_with_format_interval(tmp_path):
    _, decided, wer = decided_run(tmp_path)
    table = summary.summary_table(decided, wer).set_index("variant")
    assert table.loc["fp32", "P50 ms [95% CI]"] == "200 (95% CI 196 to 204)"
    assert table.loc["dynamic-s8", "ratio vs FP32 [CI]"] == "0.600 (95% CI 0.550 to 0.650)"
    assert table.loc["dynamic-s8", "WER % [CI]"] == "librivox_en 6.50 (95% CI 4.50 to 8.50)"
    assert table.loc["dynamic-u8", "ΔWER pp [CI]"] == "librivox_en +3.50 (95% CI 2.60 to 4.40)"
    assert table.loc["fp32", "ΔWER pp [CI]"] == "" and table.loc["fp32-again", "WER % [CI]"] == ""
    assert table.loc["dynamic-s8", "MB"] == 10.0 and table.loc["dynamic-s8", "decision"] == "recommended"
    assert table.loc["ct2-int8", "MB"] == ""  # missing values are blank, not NaN


def test_interval_text_says_when_there_is_no_interval():
    assert summary.interval_text(12.34, float("nan"), float("nan"), " ms") == "12.3 ms (no CI)"
    assert summary.interval_text(float("nan"), 1, 2) == ""
    assert summary.interval_text(-0.5, -1.0, 0.25, " pp", signed=True) == "-0.500 pp (95% CI -1.000 to 0.250)"


def test_conclusions_name_the_recommendation_and_judge_the_fastest_variant(tmp_path):
    recs, _, wer = decided_run(tmp_path)
    text = "\n".join(summary.conclusion_lines(recs, wer, {"whisper-encoder": BUDGET}, {MODEL: "whisper-encoder"},
                                              {}, "test-target", quick=False))
    assert f"**{MODEL}** (FP32 P50 200 ms (95% CI 196 to 204), n=10): Recommended for {MODEL}: dynamic-s8" in text
    assert "fastest variant: dynamic-s8, P50 0.600x (95% CI 0.550 to 0.650) FP32's, faster" in text
    assert "worst ΔWER +0.500 pp (95% CI -0.500 to 1.500) on librivox_en passes the 2 pp goal" in text
    assert "decisions: " in text and "recommended 1" in text and "rejected 1" in text
    assert "CTranslate2 int8 encoder (reference): P50 0.500x" in text
    assert "- Quality budget for whisper-encoder: WER +2 pp, cosine ≥ 0.95, SNR dB ≥ 10." in text
    assert "Drift check: FP32 measured again after the variants did not differ significantly" in text
    assert "Quick mode" not in text and "on test-target" in text


def test_a_failing_fastest_variant_says_fails_and_names_its_figure(tmp_path):
    recs, _, wer = decided_run(tmp_path, s8_delta=(4.0, 3.0, 5.0))
    text = "\n".join(summary.model_lines(recs[MODEL], wer, BUDGET, {}))
    assert "worst ΔWER +4.00 pp (95% CI 3.00 to 5.00) on librivox_en fails the 2 pp goal by 2 pp" in text
    assert "decision: rejected (WER +4.0 pp > budget 2 pp)" in text
    assert "keep FP32" in text  # dynamic-u8 is over budget too: nothing is recommended


def test_an_interval_across_the_budget_is_inconclusive_even_when_accepted(tmp_path):
    recs, _, wer = decided_run(tmp_path, s8_delta=(1.5, 0.5, 2.5))
    line = summary.model_lines(recs[MODEL], wer, BUDGET, {})[1]
    assert "is inconclusive against the 2 pp goal" in line and "decision: recommended" in line


def test_a_quick_run_adds_its_caveat_and_a_drifted_control_warns(tmp_path):
    recs, _, wer = decided_run(tmp_path, control_verdict="slower")
    lines = summary.conclusion_lines(recs, wer, {"whisper-encoder": BUDGET}, {MODEL: "whisper-encoder"}, {},
                                     "t", quick=True)
    assert summary.QUICK_CAVEAT in lines
    warning = next(line for line in lines if "Warning" in line)
    assert f"FP32 of {MODEL} measured again at the end ran 1.30x (95% CI 1.20 to 1.40)" in warning
    assert not any("Drift check" in line for line in lines)


def test_the_reference_is_compared_with_the_recommended_variant_from_its_samples(tmp_path):
    recs, _, wer = decided_run(tmp_path)
    rng = np.random.default_rng(0)
    samples = {(MODEL, "ct2-int8"): list(100 + rng.normal(0, 1, 30)),
               (MODEL, "dynamic-s8"): list(120 + rng.normal(0, 1, 30))}
    line = next(x for x in summary.model_lines(recs[MODEL], wer, BUDGET, samples) if "CTranslate2" in x)
    assert "; dynamic-s8 against it: 1.2" in line and line.endswith(", slower.")


def test_budget_line_leaves_out_thresholds_that_are_not_applied():
    piper = QualityBudget(max_wer_increase_pp=2.0, min_cosine=None, min_snr_db=None)
    assert summary.budget_line("piper", piper) == "- Quality budget for piper: WER +2 pp."


def test_tradeoff_figure_has_a_column_per_model_and_notes_untranscribed_variants(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    _, decided, _ = decided_run(tmp_path)
    decided.loc[decided["candidate"] == "dynamic-u8", "max_delta_wer_pp"] = np.nan
    fig = summary.tradeoff_figure(decided, [MODEL], {MODEL: BUDGET}, "t")
    top = fig.axes[0]
    assert "1 variant(s) not transcribed" in top.get_title()
    assert 2.0 in [line.get_ydata()[0] for line in top.get_lines()]  # the budget line


def test_rows_to_transcribe_skip_the_control_and_prescreened_rows(tmp_path):
    from saraikit.experiments.quantize.measure import rows_to_transcribe

    _, decided, _ = decided_run(tmp_path)
    decided.loc[decided["candidate"] == "dynamic-u8", "rejected_before_wer"] = "slower than FP32"
    assert [r.candidate for r in rows_to_transcribe(decided, MODEL)] == ["fp32", "dynamic-s8", "ct2-int8"]
    assert "dynamic-u8" in [r.candidate for r in rows_to_transcribe(decided, MODEL, wer_for_rejected=True)]


def test_records_store_every_candidate_and_kpis_of_fp32_and_the_recommended_variant(tmp_path, tmp_store):
    from saraikit.quality.wer import wer_report
    from saraikit.report import kpi, quantize_records

    recs, decided, _ = decided_run(tmp_path)
    for name in ("s8.onnx", "u8.onnx"):
        (tmp_path / name).write_bytes(b"y" * 100)
    decided["path"] = [str(tmp_path / p) if isinstance(p, str) else p for p in decided["path"]]
    recs[MODEL].table["path"] = decided["path"].values
    report = wer_report(["one two three"], ["one two three"], ["u0"], "en")
    reports = {MODEL: {"fp32": {"librivox_en": report}, "dynamic-s8": {"librivox_en": report}}}
    comparisons = {MODEL: {"dynamic-s8": comparison(0.99, 20.0)}}
    run_id = tmp_store.start_run(target="tgt")
    ids = quantize_records.record_candidates(tmp_store, run_id, decided, comparisons, reports, {MODEL: BUDGET}, "m")
    assert len(ids) == len(decided)
    trials = tmp_store.trials(experiment="quantization").set_index("model_name")
    assert set(trials.index) == {f"{MODEL}:{c}" for c in decided["candidate"]}
    written = quantize_records.record_kpis(tmp_store, run_id, recs, reports, {MODEL: "whisper-encoder"}, "m")
    rows = kpi.history(tmp_store, "tgt")
    assert written == len(rows) == 6  # size, P50 and WER of fp32 and of dynamic-s8
    assert set(rows["model"]) == {f"{MODEL}-encoder", f"{MODEL}-encoder.dynamic-s8"}
    assert quantize_records.kpi_label("piper-x", "piper", "dynamic-u8") == "piper-x.dynamic-u8"
