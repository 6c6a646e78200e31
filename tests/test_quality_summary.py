"""Notebook 06's conclusions and tables, from small synthetic frames shaped like the quality run's."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from saraikit.core.store import Trial
from saraikit.quality import summary, tables
from saraikit.quality.stt_eval import AccuracyRun, evenly, score
from saraikit.report import quality_records
from saraikit.report.kpi import record_kpi

TARGETS = {"wer": 10.0, "tts_intelligibility_wer": 10.0, "predicted_mos": 3.0}


def wer_rows():
    def row(system, dataset, wer, low, high, raw, n=20):
        return {"system": system, "dataset": dataset, "language": "es", "n_utterances": n, "n_words": 10 * n,
                "wer_raw_%": raw, "wer_%": wer, "wer_ci_low": low, "wer_ci_high": high, "cer_raw_%": raw / 2,
                "cer_%": wer / 2, "cer_ci_low": low / 2, "cer_ci_high": high / 2, "skipped": 0}
    return pd.DataFrame([row("whisper-base int8", "asterisk_es", 14.0, 12.0, 16.5, 40.0),
                         row("whisper-base float32", "asterisk_es", 14.0, 11.5, 16.0, 41.0),
                         row("whisper-base int8", "librivox_en", 4.2, 2.0, 7.0, 20.0)])


def noise_rows():
    def row(system, noise, snr, wer, runaway=0):
        return {"system": system, "set": "es (asterisk)", "language": "es", "noise": noise, "snr_db": snr,
                "measured_snr_db": snr + (0.001 if noise != "clean" else 0), "n_utterances": 8, "wer_%": wer,
                "wer_ci_low": wer - 5, "wer_ci_high": wer + 5, "cer_%": wer / 2, "skipped": 0,
                "runaway_utterances": runaway}
    return pd.DataFrame([row("whisper-base int8", "clean", math.inf, 12.0),
                         row("whisper-base int8", "white", 10, 20.0),
                         row("whisper-base int8", "white", 0, 160.0, runaway=2)])


def results(**overrides):
    paired = pd.DataFrame([{"baseline": "whisper-base float32", "candidate": "whisper-base int8",
                            "dataset": "asterisk_es", "n_utterances": 20, "wer_baseline_%": 14.0,
                            "wer_candidate_%": 14.0, "diff_points": 0.0, "ci_low": -1.5, "ci_high": 1.5,
                            "significant": False, "identical_transcripts": 18}])
    onsets = pd.DataFrame([{"system": "whisper-base int8", "set": "es (asterisk)", "noise": "white",
                            "highest_snr_worse_than_clean": 10.0}])
    trips = pd.DataFrame([{"voice": "piper-en_US-joe-medium", "language": "en", "sentences": 12, "words": 90,
                           "wer_%": 3.0, "ci_low": 1.0, "ci_high": 6.0, "cer_%": 1.0, "wer_raw_%": 5.0},
                          {"voice": "espeak-ng-es", "language": "es", "sentences": 8, "words": 60,
                           "wer_%": 25.0, "ci_low": 15.0, "ci_high": 36.0, "cer_%": 10.0, "wer_raw_%": 30.0}])
    mos = pd.DataFrame([{"group": "piper-en_US-joe-medium", "n_clips": 8, "n_skipped": 0, "p808_mos": 3.4,
                         "p808_mos_ci_low": 3.2, "p808_mos_ci_high": 3.6, "ovrl": 3.1},
                        {"group": "real: librivox_en", "n_clips": 8, "n_skipped": 0, "p808_mos": 2.5,
                         "p808_mos_ci_low": 2.2, "p808_mos_ci_high": 2.8, "ovrl": 2.4}])
    skipped = pd.DataFrame([{"id": "short", "stage": "audio", "reason": "too short", "reference": "x"},
                            {"id": "dots", "stage": "reference", "reason": "empty after normalization",
                             "reference": "..."}])
    values = dict(wer_table=wer_rows(), paired=paired, noise_table=noise_rows(), noise_onsets=onsets,
                  trip_table=trips, mos_table=mos, ratings_message="no ratings yet", bad_dropped=2,
                  bad_skipped=skipped)
    return summary.QualityResults(**{**values, **overrides})


def conclusions(quick=False, targets=TARGETS, **overrides):
    return summary.conclusion_lines(results(**overrides), "tgt", "run-1", quick, "whisper-base int8", targets)


def test_accuracy_lines_give_every_system_with_its_interval_and_the_tie():
    lines = summary.accuracy_lines(wer_rows(), 10.0)
    assert lines[0].startswith("- **asterisk_es** WER: whisper-base int8 14.0% (95% CI 12.0 to 16.5, n=20); "
                               "whisper-base float32 14.0% (95% CI 11.5 to 16.0, n=20).")
    assert "Lowest point estimate: whisper-base int8, whisper-base float32 (tied)" in lines[0]
    assert "raw WER of the same transcripts 40.0% to 41.0%" in lines[0]


def test_a_wer_above_its_target_fails_and_names_the_figure():
    goal = summary.accuracy_lines(wer_rows(), 10.0)[1]
    assert goal.startswith("  - against the WER target: whisper-base int8 fails the 10 % goal by 4 %")
    english = summary.accuracy_lines(wer_rows(), 10.0)[-1]
    assert "whisper-base int8 passes the 10 % goal" in english
    assert not any("target" in line for line in summary.accuracy_lines(wer_rows(), None))


def test_tts_lines_judge_round_trip_and_predicted_mos_against_their_targets():
    lines = [line for line in conclusions() if "TTS round trip" in line or "not human MOS" in line]
    piper, espeak, mos, real = lines
    assert "piper-en_US-joe-medium: WER 3.00% (95% CI 1.00 to 6.00, n=12 sentences); passes the 10 % goal" in piper
    assert "espeak-ng-es" in espeak and "fails the 10 % goal by 15 %" in espeak
    assert "P.808 3.40 (95% CI 3.20 to 3.60, n=8 clips), OVRL 3.10; passes the 3 goal" in mos
    assert real.endswith("real: librivox_en: P.808 2.50 (95% CI 2.20 to 2.80, n=8 clips), OVRL 2.40.")  # not judged


def test_paired_and_noise_lines_come_from_the_frames():
    text = "\n".join(conclusions())
    assert ("- whisper-base int8 vs whisper-base float32 on asterisk_es: 0 points (95% CI -1.50 to 1.50, n=20): "
            "no significant difference; identical transcripts on 18 of 20 utterances.") in text
    assert ("- Noise, whisper-base int8 on es (asterisk) (n=8): clean 12.0%; worst white at 0 dB: 160% "
            "(95% CI 155 to 165, n=8); white significantly worse than clean from 10 dB down") in text
    assert "- 2 of 16 noisy transcripts hold more inserted words than their reference has words" in text


def test_a_quick_run_says_so_and_a_full_run_does_not():
    assert summary.QUICK_NOTE in conclusions(quick=True)[0]
    assert "quick" not in conclusions(quick=False)[0]
    assert conclusions()[0].startswith("Hardware target **tgt**, run `run-1`.")


def test_bad_input_and_human_mos_lines():
    lines = conclusions()
    assert "- Human MOS: no ratings yet." in lines
    assert lines[-1] == ("- Bad input: 2 dropped by the dataset loader and 2 skipped by the scorer, each with its "
                         "reason (empty after normalization, too short).")


def test_without_targets_nothing_is_judged():
    text = "\n".join(conclusions(targets=None))
    assert "goal" not in text


def test_a_figure_without_an_interval_is_not_judged():
    trips = results().trip_table.assign(ci_low=float("nan"), ci_high=float("nan"))
    line = next(x for x in conclusions(trip_table=trips) if "piper" in x and "round trip" in x)
    assert "3.00% (no CI, n=12 sentences)" in line and "is not judged against the 10 % goal" in line


def transcripts(pairs, language="en", dataset="set"):
    return pd.DataFrame([{"id": f"u{i}", "dataset": dataset, "language": language, "duration_s": 1.0,
                          "reference": ref, "hypothesis": hyp, "skipped": None} for i, (ref, hyp) in enumerate(pairs)])


def test_round_trip_and_paired_tables_from_real_scores():
    good = score(transcripts([("one two three", "one two three"), ("four five", "four five")]))
    bad = score(transcripts([("one two three", "one two tree"), ("four five", "four")]))
    trip = tables.round_trip_table({"voice-a": good, "voice-b": bad}).set_index("voice")
    assert trip.loc["voice-a", "wer_%"] == 0 and trip.loc["voice-b", "wer_%"] == pytest.approx(40.0)
    assert trip.loc["voice-b", "sentences"] == 2 and trip.loc["voice-b", "words"] == 5
    run = AccuracyRun({("whisper-base int8", "set"): bad, ("whisper-base float32", "set"): good}, {})
    labels = ["whisper-base int8", "whisper-base float32", "whisper-tiny.en int8"]
    assert tables.comparison_pairs(labels) == [("whisper-base int8", "whisper-base float32"),
                                               ("whisper-tiny.en int8", "whisper-base int8")]
    paired = tables.paired_table(run, [("whisper-base float32", "whisper-base int8")])
    assert paired.loc[0, "diff_points"] == pytest.approx(40.0) and paired.loc[0, "identical_transcripts"] == 0
    assert tables.paired_table(run, []).empty
    assert list(tables.worst_rows(bad, 1)["id"]) == ["u1"]
    assert "===== whisper-base int8 on set" in tables.worst_utterances_text(run, ["whisper-base int8"], 1)


def test_snr_check_and_evenly():
    assert tables.snr_check_line(noise_rows()) == "largest |measured - requested SNR| over 2 conditions: 0.0010 dB"
    assert evenly(list(range(10)), 3) == [0, 3, 6] and evenly([1, 2], 5) == [1, 2]


def test_kpi_rows_line_counts_this_runs_quality_kpis(tmp_store):
    run_id = tmp_store.start_run(target="tgt")
    other = tmp_store.start_run(target="tgt")
    trial = tmp_store.record(run_id, Trial("x", {}, []))
    record_kpi(tmp_store, run_id, "wer", 12.0, 20, ci=(10.0, 14.0), source_trials=[trial])
    record_kpi(tmp_store, run_id, "latency_p50_ms", 100.0, 20, ci=(90.0, 110.0), source_trials=[trial])
    record_kpi(tmp_store, other, "cer", 5.0, 20, ci=(4.0, 6.0), source_trials=[trial])
    line = quality_records.kpi_rows_line(tmp_store, "tgt", run_id)
    assert line.startswith("- 1 KPI rows written (wer: 1); seed claims for comparison: seed 000: 'WER ~2.0%*'")
    assert "MOS ~4.3" in line and "Qwen" not in line
