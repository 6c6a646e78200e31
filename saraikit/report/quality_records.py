"""The quality runs' results as trials and KPI rows, and the KPI rows the quality runs read back.

Decisions:

- One trial per (system, dataset) of an accuracy run, per noisy condition
  of a noise sweep (the clean rows are already in the accuracy trials), and
  per voice for the TTS round trip and for predicted MOS.  Trials keep
  :meth:`WerReport.figures` as fractions; the ``wer``/``cer``/
  ``tts_intelligibility_wer`` KPIs are written in percent (the unit of
  :data:`saraikit.report.kpi.KPIS`).
- The ``predicted_mos`` KPI is DNSMOS's P.808 score with provenance
  "estimated": a network's estimate of a listening test, not human MOS.
- The conclusions name how many KPI rows of each kind the run wrote, with
  the seeds' unmeasured claims of the same KPIs beside them
  (:func:`kpi_rows_line`).
- Unless told which, notebook 06 scores first the INT8 encoder variant that
  notebook 01 recommended: its newest ``model_size_mb`` KPI row for the target
  (:func:`recommended_int8`).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from saraikit.core.stats import summarize
from saraikit.core.store import Figure, ResultsStore, Trial
from saraikit.quality.mos import SCORE_KEYS
from saraikit.quality.stt_eval import NOISE_TEXT, SCORING_TEXT, AccuracyRun, NoiseRun, SttScore, percent
from saraikit.quality.transcribe import DECODING_TEXT, SttSystem
from saraikit.quality.tts_eval import LEVEL_DBFS, MOS_LABEL, Voice, mos_summary
from saraikit.report.kpi import SEED_CLAIMS, history, record_kpi

__all__ = ["QUALITY_KPIS", "kpi_rows_line", "recommended_int8", "record_accuracy", "record_noise", "record_tts",
           "record_voice_latency"]

QUALITY_KPIS = ("wer", "cer", "tts_intelligibility_wer", "predicted_mos", "tts_first_audio_p50_ms")


def recommended_int8(store: ResultsStore, target: str, model: str = "whisper-base") -> list[str]:
    """Encoder variants notebook 01 recommended for ``target``, newest first (from its KPI rows)."""
    rows = history(store, target)
    prefix = f"{model}-encoder."
    chosen = rows[(rows["kpi"] == "model_size_mb") & rows["model"].str.startswith(prefix)]
    variants = chosen.sort_values("trial_id", ascending=False)["model"].str.removeprefix(prefix)
    return list(dict.fromkeys(variants))


def record_accuracy(store: ResultsStore, run_id: str, run: AccuracyRun,
                    experiment: str = "stt_accuracy") -> pd.DataFrame:
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
        kpi_ids = [record_kpi(store, run_id, name, percent(value), report.n, ci=(percent(ci.low), percent(ci.high)),
                              dataset=dataset, method=method, model_name=label, model_sha256=sha,
                              source_trials=[trial_id])
                   for name, value, ci in (("wer", report.wer, report.wer_ci), ("cer", report.cer, report.cer_ci))]
        rows.append({"system": label, "dataset": dataset, "trial_id": trial_id, "kpi_trial_ids": kpi_ids})
    return pd.DataFrame(rows)


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
            method={"decoding": DECODING_TEXT, "scoring": SCORING_TEXT, "noise": NOISE_TEXT},
            samples=[float(w) for w in result.report.rows["wer"]])))
    return trial_ids


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
            kpi_id = record_kpi(store, run_id, "tts_intelligibility_wer", percent(report.wer), report.n,
                                ci=(percent(report.wer_ci.low), percent(report.wer_ci.high)),
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
                                method=f"DNSMOS P.808 (predicted, not human MOS), clips at {LEVEL_DBFS:g} dBFS RMS",
                                provenance="estimated", source_trials=[trial])
            rows.append({"voice": voice.label, "kpi": "predicted_mos", "trial_id": trial, "kpi_id": kpi_id})
    return pd.DataFrame(rows)



def record_voice_latency(store: ResultsStore, run_id: str, synthesized: pd.DataFrame,
                         dataset: str = "assistant sentences") -> list[int]:
    """Per voice: a trial with every sentence's time to first audio, and its ``tts_first_audio_p50_ms`` KPI."""
    ids = []
    for label, group in synthesized.groupby("voice", sort=False):
        values = group["first_audio_ms"].astype(float).tolist()
        s = summarize(values)
        language = group["language"].iloc[0]
        trial = store.record(run_id, Trial(
            "tts_first_audio", {"voice": label, "language": language},
            [Figure("first_audio_p50_ms", s.p50, "ms", s.n), Figure("rtf_p50", float(group["rtf"].median()), "", s.n),
             Figure("load_rss_mib", float(group["load_rss_mib"].iloc[0]), "MiB", 1)],
            model_name=label, samples=values,
            method={"description": "stage time to first audio per sentence, after one warm-up, in the notebook's process"}))
        ids.append(record_kpi(store, run_id, "tts_first_audio_p50_ms", s.p50, s.n, ci=(s.p50_ci_low, s.p50_ci_high),
                              dataset=f"{dataset} ({language})", model_name=label, source_trials=[trial],
                              method="TTS stage start to first audio part, one sentence at a time; "
                                     "bootstrap CI within one process", samples=values))
    return ids


def kpi_rows_line(store: ResultsStore, target: str, run_id: str, kpis: Sequence[str] = QUALITY_KPIS) -> str:
    """A conclusion line: the quality KPI rows ``run_id`` wrote, per KPI, and the seeds' claims for comparison."""
    rows = history(store, target)
    written = rows[(rows["run_id"] == run_id) & rows["kpi"].isin(kpis)]
    counts = ", ".join(f"{k}: {v}" for k, v in written["kpi"].value_counts().items())
    claims = "; ".join(c["source"] for c in SEED_CLAIMS if c["kpi"] in kpis)
    return f"- {len(written)} KPI rows written ({counts}); seed claims for comparison: {claims}."
