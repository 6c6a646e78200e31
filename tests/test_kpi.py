import pytest
import yaml

from saraikit.core.errors import ConfigError, MeasurementError
from saraikit.core.store import Figure, Trial
from saraikit.core.verdict import NOT_JUDGED, judge, judge_or_not, scenario
from saraikit.report import kpi


def source(store, run_id) -> list[int]:
    """A stored measurement for a KPI row to point at."""
    return [store.record(run_id, Trial("unit", {"x": 1}, [Figure("latency_p50", 1.0, "ms", n=1)]))]


def record(store, run_id, name, value, **kwargs):
    kwargs.setdefault("source_trials", source(store, run_id))
    return kpi.record_kpi(store, run_id, name, value, **kwargs)


def test_ledger_shows_newest_measurement_with_verdict_and_provenance(tmp_store):
    run1 = tmp_store.start_run(target="box")
    record(tmp_store, run1, "audio_path_p50_ms", 300.0, n=40, ci=(280.0, 320.0), dataset="librivox_en",
           method="e2e, 40 utterances")
    run2 = tmp_store.start_run(target="box")
    record(tmp_store, run2, "audio_path_p50_ms", 230.0, n=40, ci=(220.0, 238.0), dataset="librivox_en",
           method="e2e, 40 utterances")
    record(tmp_store, run2, "wer", 12.0, n=476, ci=(9.0, 15.0), dataset="asterisk_es", model_name="whisper-base")
    table = kpi.ledger(tmp_store, "box").set_index("kpi")
    row = table.loc["audio_path_p50_ms"]
    assert row["value"] == 230.0 and row["run_id"] == run2 and row["n"] == 40
    assert row["verdict"] == "pass" and row["provenance"] == "measured" and row["mode"] == "full"
    assert row["seed_claim"] == "120 (estimated)"
    assert table.loc["wer", "verdict"] == "inconclusive"  # CI 9..15 straddles the 10% budget
    assert table.loc["v2v_ttfa_p50_ms", "provenance"] == "missing"  # nobody measured it: not shown as measured
    assert table.loc["v2v_ttfa_p50_ms", "verdict"] == "missing"
    record(tmp_store, run2, "stack_rss_mib", 700.0, n=1)
    assert kpi.ledger(tmp_store, "box").set_index("kpi").loc["stack_rss_mib", "verdict"] == ""  # no target


def test_a_number_without_an_interval_is_never_passed_or_failed(tmp_store):
    assert kpi.verdict("wer", 5.0, None, None, 10.0) == NOT_JUDGED  # it used to say "pass"
    assert kpi.verdict("wer", 5.0, float("nan"), float("nan"), 10.0) == NOT_JUDGED
    with pytest.raises(MeasurementError, match="needs a confidence interval"):
        judge(5.0, None, None, 10.0)
    run = tmp_store.start_run(target="box")
    record(tmp_store, run, "v2v_ttfa_p50_ms", 400.0, n=1)
    assert kpi.ledger(tmp_store, "box").set_index("kpi").loc["v2v_ttfa_p50_ms", "verdict"] == NOT_JUDGED


def test_verdict_uses_the_interval_and_the_direction():
    assert kpi.verdict("audio_path_p50_ms", 250, 245, 255, 240) == "fail"
    assert kpi.verdict("audio_path_p50_ms", 239, 230, 245, 240) == "inconclusive"
    assert kpi.verdict("predicted_mos", 3.5, 3.2, 3.8, 3.0) == "pass"
    assert kpi.verdict("predicted_mos", 2.5, 2.2, 2.8, 3.0) == "fail"
    assert judge_or_not(1.0, 0.5, 1.5, None) == ""
    with pytest.raises(MeasurementError, match="upside down"):
        judge(1.0, 2.0, 0.5, 3.0)


def test_seed_004_scenarios_are_decided_on_the_interval():
    assert scenario(200, 190, 210, target=240, ceiling=500).letter == "A"
    assert scenario(600, 550, 650, target=240, ceiling=500).letter == "B"
    assert scenario(300, 280, 320, target=240, ceiling=500).letter == "C"
    assert scenario(245, 230, 260, target=240, ceiling=500).letter == "borderline"
    assert scenario(490, 450, 530, target=240, ceiling=500).letter == "borderline"
    with pytest.raises(MeasurementError, match="needs a confidence interval"):
        scenario(200, None, None, target=240, ceiling=500)


def test_a_quick_run_never_replaces_a_full_run_figure(tmp_store):
    full = tmp_store.start_run(target="box")
    record(tmp_store, full, "cer", 10.4, n=60, ci=(8.0, 13.0), dataset="asterisk_es", model_name="whisper-base")
    quick = tmp_store.start_run(target="box", mode="quick")
    record(tmp_store, quick, "cer", 2.9, n=8, ci=(0.5, 6.0), dataset="asterisk_es", model_name="whisper-base")
    record(tmp_store, quick, "llm_load_s", 0.5, n=1, model_name="gemma")
    table = kpi.ledger(tmp_store, "box").set_index("kpi")
    assert table.loc["cer", "value"] == 10.4 and table.loc["cer", "mode"] == "full"
    assert table.loc["llm_load_s", "mode"] == "quick"  # only a quick run measured it: shown, labelled
    quick_view = kpi.ledger(tmp_store, "box", mode="quick").set_index("kpi")
    assert quick_view.loc["cer", "value"] == 2.9


def test_ledgers_are_per_target(tmp_store):
    run = tmp_store.start_run(target="a")
    record(tmp_store, run, "llm_tg_tokens_per_s", 50.0, n=5)
    assert "llm_tg_tokens_per_s" not in set(kpi.ledger(tmp_store, "b")["kpi"])
    assert "llm_tg_tokens_per_s" in set(kpi.ledger(tmp_store, "a")["kpi"])


def test_derived_rows_keep_their_label_and_their_inputs(tmp_store):
    run = tmp_store.start_run(target="a")
    inputs = source(tmp_store, run) + source(tmp_store, run)
    record(tmp_store, run, "v2v_ttfa_projected_p50_ms", 800.0, n=None, provenance="derived",
           method="sum of stage medians", source_trials=inputs)
    row = kpi.ledger(tmp_store, "a").set_index("kpi").loc["v2v_ttfa_projected_p50_ms"]
    assert row["provenance"] == "derived" and row["method"] == "sum of stage medians"
    assert list(row["source_trials"]) == inputs
    assert kpi.ledger(tmp_store, "a").set_index("kpi").loc["v2v_ttfa_p50_ms", "provenance"] == "missing"


def test_unknown_kpi_and_kpi_without_source_are_rejected(tmp_store):
    run = tmp_store.start_run()
    with pytest.raises(ConfigError, match="unknown KPI 'latency'"):
        kpi.record_kpi(tmp_store, run, "latency", 1.0, n=1, source_trials=[1])
    with pytest.raises(ConfigError, match="names no source trial"):
        kpi.record_kpi(tmp_store, run, "wer", 1.0, n=1)
    assert kpi.history(tmp_store).empty


def test_yaml_export_carries_provenance_and_mode(tmp_store, tmp_path):
    run = tmp_store.start_run(target="a")
    record(tmp_store, run, "wer", 7.5, n=10, ci=(5.0, 10.0), dataset="librivox_en", model_name="whisper-tiny.en")
    path = kpi.export_yaml(kpi.ledger(tmp_store, "a"), tmp_path / "kpis.yaml", "a")
    data = yaml.safe_load(path.read_text())
    entry = data["kpis"]["wer/whisper-tiny.en/librivox_en"]
    assert entry["value"] == 7.5 and entry["ci95"] == [5.0, 10.0] and entry["provenance"] == "measured"
    assert entry["mode"] == "full"
    assert data["kpis"]["audio_path_p50_ms"]["provenance"] == "missing"
    assert all(c["note"].startswith("claimed by the seeds") for c in data["seed_claims"])


def test_goal_sentences_follow_the_verdict():
    from saraikit.core.verdict import goal_sentence

    assert goal_sentence(1364, 1333, 1391, 500).startswith("fails the 500 ms goal by 864 ms (2.73x")
    assert goal_sentence(400, 380, 420, 500).startswith("passes the 500 ms goal")
    assert goal_sentence(490, 450, 530, 500).startswith("is inconclusive")
    assert goal_sentence(400, None, None, 500).startswith("is not judged")
    assert goal_sentence(3.2, 3.0, 3.4, 3.5, better="higher", unit="").startswith("fails the 3.5 goal by 0.3 (0.91x")
