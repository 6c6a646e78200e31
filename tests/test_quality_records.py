import pytest

from saraikit.core.store import Figure, Trial
from quality_helpers import utterance

from saraikit.quality.stt_eval import AccuracyRun, score, transcribe_all
from saraikit.quality.transcribe import SttSystem
from saraikit.report import kpi
from saraikit.report.quality_records import recommended_int8, record_accuracy


def test_record_accuracy_writes_percent_kpis(tmp_store):
    items = [utterance(f"u{i}", "uno dos tres cuatro", seed=i) for i in range(4)]
    result = score(transcribe_all(lambda s, l: "uno dos tres", items), n_boot=200)
    run = AccuracyRun({("whisper-base int8", "asterisk_es"): result},
                      {"whisper-base int8": SttSystem("whisper-base int8", "whisper-base")})
    run_id = tmp_store.start_run(target="test-target")
    ids = record_accuracy(tmp_store, run_id, run)
    rows = kpi.history(tmp_store).set_index("kpi")
    assert rows.loc["wer", "value"] == pytest.approx(25.0)
    assert rows.loc["wer", "n"] == 4 and rows.loc["wer", "dataset"] == "asterisk_es"
    assert rows.loc["wer", "ci_low"] <= 25.0 <= rows.loc["wer", "ci_high"]
    trial = tmp_store.results(experiment="stt_accuracy").set_index("metric")
    assert trial.loc["wer", "value"] == pytest.approx(0.25) and trial.loc["wer", "unit"] == "fraction"
    assert int(ids.iloc[0]["trial_id"]) in set(trial["trial_id"])


def test_recommended_int8_reads_notebook_01_kpi_rows(tmp_store):
    run_id = tmp_store.start_run(target="t")
    for label in ("whisper-base-encoder", "whisper-base-encoder.dynamic-u8", "whisper-tiny.en-encoder.dynamic-s8",
                  "whisper-base-encoder.static-qdq-s8s8-minmax"):
        source = tmp_store.record(run_id, Trial("quantization", {"model": label}, [Figure("model_size", 1e7, "bytes")]))
        kpi.record_kpi(tmp_store, run_id, "model_size_mb", 10.0, n=1, model_name=label, source_trials=[source])
    assert recommended_int8(tmp_store, "t") == ["static-qdq-s8s8-minmax", "dynamic-u8"]
    assert recommended_int8(tmp_store, "other") == []
