import numpy as np

from saraikit.core.store import Figure, Trial
from saraikit.report import index_page, kpi


def source(store, run) -> list[int]:
    return [store.record(run, Trial("unit", {}, [Figure("x", 1.0, "ms", n=1)]))]


def add(store, target, value, seed, n=60, ci=None, mode="full"):
    run = store.start_run(target=target, mode=mode)
    samples = list(value * np.random.default_rng(seed).lognormal(0, 0.03, n)) if n else None
    kpi.record_kpi(store, run, "audio_path_p50_ms", value, n=n, ci=ci, samples=samples, dataset="d",
                   source_trials=source(store, run))
    return run


def test_a_significantly_slower_run_is_a_regression(tmp_store):
    add(tmp_store, "box", 200.0, 0)
    add(tmp_store, "box", 260.0, 1)
    (found,) = index_page.regressions(tmp_store, "box")
    assert found.regressed and found.previous == 200.0 and found.current == 260.0
    assert found.evidence.startswith("ratio 1.2") or found.evidence.startswith("ratio 1.3")


def test_noise_is_not_a_regression(tmp_store):
    add(tmp_store, "box", 200.0, 0)
    add(tmp_store, "box", 200.5, 1)
    (found,) = index_page.regressions(tmp_store, "box")
    assert not found.regressed


def test_higher_is_better_kpis_regress_downwards(tmp_store):
    for value, seed in ((50.0, 0), (35.0, 1)):
        run = tmp_store.start_run(target="box")
        kpi.record_kpi(tmp_store, run, "llm_tg_tokens_per_s", value, n=10, source_trials=source(tmp_store, run),
                       samples=list(value * np.random.default_rng(seed).lognormal(0, 0.02, 10)))
    (found,) = index_page.regressions(tmp_store, "box")
    assert found.regressed


def test_intervals_without_samples_need_no_overlap(tmp_store):
    add(tmp_store, "box", 10.0, 0, n=None, ci=(9.0, 11.0))
    add(tmp_store, "box", 10.5, 0, n=None, ci=(10.0, 11.0))
    assert not index_page.regressions(tmp_store, "box")[0].regressed
    add(tmp_store, "box", 14.0, 0, n=None, ci=(13.0, 15.0))
    assert index_page.regressions(tmp_store, "box")[0].regressed


def test_index_lists_targets_and_flags_regressions(tmp_store, tmp_path):
    add(tmp_store, "box-a", 200.0, 0)
    add(tmp_store, "box-a", 300.0, 1)
    add(tmp_store, "box-b", 100.0, 2)
    path = index_page.build_index(tmp_store, tmp_path / "outputs")
    text = path.read_text()
    assert "<h2>box-a</h2>" in text and "<h2>box-b</h2>" in text
    assert text.count("class='regressed'>regression") == 1
    assert "<script" not in text


def test_regressions_compare_like_with_like(tmp_store):
    add(tmp_store, "box", 200.0, 0)
    add(tmp_store, "box", 400.0, 1, mode="quick")  # a slow smoke run is not a regression of the full run
    add(tmp_store, "box", 201.0, 2)
    found = {r.mode: r for r in index_page.regressions(tmp_store, "box")}
    assert set(found) == {"full"}  # one quick run alone has nothing to be compared with
    assert not found["full"].regressed and found["full"].previous == 200.0 and found["full"].current == 201.0


def test_the_decision_uses_seed_004_scenarios_on_full_runs_only(tmp_store):
    from saraikit.report.decision import decision_lines

    run = tmp_store.start_run(target="box")
    kpi.record_kpi(tmp_store, run, "v2v_ttfa_p50_ms", 1364.0, n=26, ci=(1333.0, 1391.0), dataset="d",
                   source_trials=source(tmp_store, run))
    lines = decision_lines(kpi.ledger(tmp_store, "box"), ceiling_ms=1000.0)
    assert any("voice-to-voice time to first audio is 1364 ms" in line and "**fail**" in line for line in lines)
    assert lines[-1].startswith("- Scenario B (seed 004")
    assert any(line.startswith("- Not measured") and "audio_path_p50_ms" in line for line in lines)
    assert decision_lines(kpi.ledger(tmp_store, "box"), ceiling_ms=2000.0)[-1].startswith("- Scenario C")
    quick = tmp_store.start_run(target="other", mode="quick")
    kpi.record_kpi(tmp_store, quick, "v2v_ttfa_p50_ms", 400.0, n=4, ci=(300.0, 450.0), dataset="d",
                   source_trials=source(tmp_store, quick))
    assert "not decided from a quick run" in decision_lines(kpi.ledger(tmp_store, "other"), 1000.0)[-1]


def test_inventory_conclusions_and_kpis_come_from_the_tables(tmp_store):
    import pandas as pd

    from saraikit.core import stats
    from saraikit.core.hardware import Fingerprint
    from saraikit.report import inventory_summary

    fp = Fingerprint(**{**{k: None for k in Fingerprint.__dataclass_fields__}, "cpu_model": "Test CPU",
                        "logical_cores": 2, "isa_flags": ["avx2"]})
    table = pd.DataFrame([{"name": "m", "source": "user", "quantized": True, "error": ""},
                          {"name": "n", "source": "package", "quantized": None, "error": "bad header"}])
    compat = pd.DataFrame([{"ok": True, "message": ""}, {"ok": False, "message": "3584 != 3072"}])
    run = tmp_store.start_run(target="box")
    trial = source(tmp_store, run)[0]
    results = pd.DataFrame([{"model": "m", "status": "ok", "p50_ms": 6.5, "p50_ci_low": 6.4, "p50_ci_high": 6.6,
                             "p50_ci": "95% CI 6.40 to 6.60", "n": 200, "p99": "9 ms (unsupported: n=200 < 662)",
                             "load_s": 0.2, "trial_id": trial, "error": ""},
                            {"model": "x", "status": "failed", "error": "crashed: SIGSEGV"}])
    overhead = type("O", (), {"ratio": 1.03, "rounds": 30, "calls_per_round": 5000,
                              "comparison": stats.compare([1.0, 1.01, 0.99, 1.0, 1.02, 1.0, 0.98] * 3,
                                                          [1.03, 1.04, 1.02, 1.03, 1.05, 1.03, 1.01] * 3)})()
    lines = inventory_summary.conclusion_lines(fp, "box", table, compat, results, overhead, "silero-vad")
    text = "\n".join(lines)
    assert "2 models in `models/` (1 added by the user); 1 already quantized" in text
    assert "1 model(s) could not be inspected: n" in text and "1 mismatch(es) in 2 checks: 3584 != 3072" in text
    assert "- m: P50 6.5 ms" in text and "x: benchmark failed: crashed: SIGSEGV" in text
    assert "against the 1.02 goal: **" in text
    ids = inventory_summary.record_synthetic_bench(tmp_store, run, results, {"m": [6.5] * 10}, {"m": "abc"}, {})
    assert len(ids) == 2
    rows = kpi.history(tmp_store, "box").set_index("kpi")
    assert rows.loc["latency_p50_ms", "model_sha256"] == "abc" and list(rows.loc["model_load_s", "source_trials"]) == [trial]


def test_the_decision_shows_the_best_stack_per_language_beside_the_default():
    import pandas as pd

    from saraikit.report.decision import best_stack_lines, stack_comparison

    def row(model, dataset, value, low, high, mode="full"):
        return {"kpi": "v2v_ttfa_p50_ms", "model": model, "dataset": dataset, "value": value, "ci_low": low,
                "ci_high": high, "n": 24, "target": 500.0, "verdict": "pass" if high <= 500 else "fail",
                "provenance": "measured", "mode": mode}

    ledger = pd.DataFrame([row("", "2-4 s utterances, en+es", 1400, 1350, 1450), row("", "2-4 s utterances, en", 1300, 1250, 1350),
                           row("best", "2-4 s utterances, en", 450, 430, 480), row("best", "2-4 s utterances, es", 620, 600, 650)])
    lines = best_stack_lines(ledger)
    assert lines[0].startswith("- Best stack (07_stack_search), en: voice-to-voice time to first audio 450 ms")
    assert "**pass** (default stack: 1300 ms, full run)" in lines[0] and "**fail**" in lines[1]
    table = stack_comparison(ledger).set_index(["figure", "language", "stack"])
    v2v = "voice-to-voice time to first audio"
    assert table.loc[(v2v, "es", "best (07_stack_search)"), "P50 ms"] == 620
    assert table.loc[(v2v, "es", "default"), "verdict"] == "not measured"
