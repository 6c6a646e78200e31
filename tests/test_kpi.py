import pytest
import yaml

from saraikit.report import kpi
from saraikit.core.errors import ConfigError


def test_ledger_shows_newest_measurement_with_verdict_and_provenance(tmp_store):
    run1 = tmp_store.start_run(target="box")
    kpi.record_kpi(tmp_store, run1, "audio_path_p50_ms", 300.0, n=40, ci=(280.0, 320.0), dataset="librivox_en",
                   method="e2e, 40 utterances")
    run2 = tmp_store.start_run(target="box")
    kpi.record_kpi(tmp_store, run2, "audio_path_p50_ms", 230.0, n=40, ci=(220.0, 238.0), dataset="librivox_en",
                   method="e2e, 40 utterances")
    kpi.record_kpi(tmp_store, run2, "wer", 12.0, n=476, ci=(9.0, 15.0), dataset="asterisk_es", model_name="whisper-base")
    table = kpi.ledger(tmp_store, "box").set_index("kpi")
    row = table.loc["audio_path_p50_ms"]
    assert row["value"] == 230.0 and row["run_id"] == run2 and row["n"] == 40
    assert row["verdict"] == "pass" and row["provenance"] == "measured"
    assert row["seed_claim"] == "120 (estimated)"
    assert table.loc["wer", "verdict"] == "inconclusive"  # CI 9..15 straddles the 10% budget
    assert table.loc["v2v_ttfa_p50_ms", "provenance"] == "missing"  # nobody measured it: not shown as measured
    assert table.loc["v2v_ttfa_p50_ms", "verdict"] == "missing"
    kpi.record_kpi(tmp_store, run2, "stack_rss_mib", 700.0, n=1)
    assert kpi.ledger(tmp_store, "box").set_index("kpi").loc["stack_rss_mib", "verdict"] == ""  # no target, no verdict


def test_verdict_uses_the_interval_and_the_direction():
    assert kpi.verdict("audio_path_p50_ms", 250, 245, 255, 240) == "fail"
    assert kpi.verdict("audio_path_p50_ms", 239, 230, 245, 240) == "inconclusive"
    assert kpi.verdict("predicted_mos", 3.5, 3.2, 3.8, 3.0) == "pass"
    assert kpi.verdict("predicted_mos", 2.5, 2.2, 2.8, 3.0) == "fail"
    assert kpi.verdict("wer", 5.0, None, None, 10.0) == "pass"


def test_ledgers_are_per_target(tmp_store):
    kpi.record_kpi(tmp_store, tmp_store.start_run(target="a"), "llm_tg_tokens_per_s", 50.0, n=5)
    assert "llm_tg_tokens_per_s" not in set(kpi.ledger(tmp_store, "b")["kpi"])
    assert "llm_tg_tokens_per_s" in set(kpi.ledger(tmp_store, "a")["kpi"])


def test_estimated_rows_keep_their_label(tmp_store):
    kpi.record_kpi(tmp_store, tmp_store.start_run(target="a"), "v2v_ttfa_p50_ms", 800.0, n=None,
                   provenance="derived", method="sum of stage medians")
    row = kpi.ledger(tmp_store, "a").set_index("kpi").loc["v2v_ttfa_p50_ms"]
    assert row["provenance"] == "derived" and row["method"] == "sum of stage medians"


def test_unknown_kpi_is_rejected(tmp_store):
    with pytest.raises(ConfigError, match="unknown KPI 'latency'"):
        kpi.record_kpi(tmp_store, tmp_store.start_run(), "latency", 1.0, n=1)


def test_yaml_export_carries_provenance(tmp_store, tmp_path):
    run = tmp_store.start_run(target="a")
    kpi.record_kpi(tmp_store, run, "wer", 7.5, n=10, ci=(5.0, 10.0), dataset="librivox_en", model_name="whisper-tiny.en")
    path = kpi.export_yaml(kpi.ledger(tmp_store, "a"), tmp_path / "kpis.yaml", "a")
    data = yaml.safe_load(path.read_text())
    entry = data["kpis"]["wer/whisper-tiny.en/librivox_en"]
    assert entry["value"] == 7.5 and entry["ci95"] == [5.0, 10.0] and entry["provenance"] == "measured"
    assert data["kpis"]["audio_path_p50_ms"]["provenance"] == "missing"
    assert all(c["note"].startswith("claimed by the seeds") for c in data["seed_claims"])
