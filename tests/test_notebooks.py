"""Every notebook runs in the test suite, and the ledger holds across runs.

These are integration tests: the real notebooks, through papermill, on the real
default models and speech data, in quick mode with small parameters, into a
scratch outputs folder. They check values in what the notebooks stored and
printed, not only that they ran.
"""

from __future__ import annotations

import json
import math

import nbformat
import pytest
import yaml

from saraikit.core.store import ResultsStore
from saraikit.core.verdict import NOT_JUDGED, VERDICTS
from saraikit.report import kpi, workbook

pytestmark = pytest.mark.integration

# Smaller than params/quick.yaml where the quick sizes are still slow on 2 cores.
TINY = {
    "00_inventory": {"benchmarks": {"silero-vad": {"dims": {"seq_len": 1}}, "dnsmos-p808": {"dims": {"N": 1}}},
                     "plan": {"warmup": 1, "min_iterations": 6, "min_duration_s": 0.2},
                     "overhead_rounds": 6, "overhead_round_s": 0.05},
}


@pytest.fixture()
def outputs(tmp_path, monkeypatch, provisioned):
    monkeypatch.setenv("SARAIKIT_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path / "outputs"


def _params(tmp_path, values: dict):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _printed(executed_path) -> str:
    nb = nbformat.read(str(executed_path), as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/markdown", "")))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def _check_kpi_rows(store: ResultsStore, run_id: str, mode: str) -> None:
    rows = kpi.history(store)
    rows = rows[rows["run_id"] == run_id]
    assert len(rows), f"run {run_id} stored no KPI row"
    assert set(rows["mode"]) == {mode}
    trials = store.trials().set_index("trial_id")
    for row in rows.itertuples():
        assert row.source_trials, f"KPI {row.kpi} has no source trial"
        for trial_id in row.source_trials:
            assert trial_id in trials.index, f"KPI {row.kpi} points at a trial that does not exist"
            assert trials.loc[trial_id, "run_id"] == run_id, f"KPI {row.kpi} points at another run's trial"


def _check_no_verdict_without_interval(kpis_yaml) -> None:
    for key, entry in yaml.safe_load(kpis_yaml.read_text())["kpis"].items():
        if entry["ci95"] is None:
            assert entry["verdict"] in ("", NOT_JUDGED, "missing"), f"{key} judged without an interval"
        elif entry["verdict"]:
            assert entry["verdict"] in VERDICTS, key


@pytest.mark.timeout(3600)  # nine notebooks and a second 05, on 2 cores: well past the suite's 900 s default
def test_every_notebook_runs_in_quick_mode_and_reports_values(outputs, tmp_path):
    result = workbook.run_workbook(target="nb-test", quick=True, params_file=_params(tmp_path, TINY), progress=False)
    failed = {nb.name: (nb.error or "")[-1500:] for nb in result.notebooks if nb.status != "ok"}
    assert not failed, "\n\n".join(f"{name} failed:\n{error}" for name, error in failed.items())
    assert not result.browser_problems, result.browser_problems
    assert len(result.notebooks) == 9
    store = ResultsStore(outputs / "results.sqlite")
    _check_kpi_rows(store, result.run_id, "quick")
    run_dir = outputs / "nb-test" / "runs" / result.run_id
    ledger = kpi.history(store, "nb-test").set_index(["kpi", "model", "dataset"])
    # 00: real benchmark figures and the harness overhead against its goal
    silero = ledger.loc[("latency_p50_ms", "silero-vad", "synthetic inputs")]
    assert 0 < silero["value"] < 50 and silero["n"] >= 6
    assert "against the 1.02 goal" in _printed(run_dir / "00_inventory.ipynb")
    # 02: the adaptive search ran before and after the exhaustive one, and both are judged
    adaptive_ratio = kpi.history(store, "nb-test").query("kpi == 'adaptive_time_ratio'").iloc[0]
    assert adaptive_ratio["n"] == 2 and 0 < adaptive_ratio["value"] < 10
    # 04: the LLM answered, with a measured time to first token
    ttft = kpi.history(store, "nb-test").query("kpi == 'llm_ttft_p50_ms'").iloc[0]
    assert 1 < ttft["value"] < 10_000 and not math.isnan(ttft["ci_low"])
    # 05: voice to voice, measured and projected under separate names, judged by the one rule
    history = kpi.history(store, "nb-test")
    v2v = history.query("kpi == 'v2v_ttfa_p50_ms' and model == ''")
    projected = history.query("kpi == 'v2v_ttfa_projected_p50_ms'")
    assert sorted(v2v["dataset"]) == ["2-4 s utterances, en", "2-4 s utterances, en+es", "2-4 s utterances, es"]
    assert (v2v["provenance"] == "measured").all() and (v2v["value"] > 100).all()
    assert len(projected) == 1 and projected.iloc[0]["provenance"] == "derived"
    # 07: a best stack written, confirmed, and recorded per language under the model name "best"
    best = history.query("kpi == 'v2v_ttfa_p50_ms' and model == 'best'")
    assert {"2-4 s utterances, en", "2-4 s utterances, es"} <= set(best["dataset"]) and (best["value"] > 100).all()
    best_stack = yaml.safe_load((outputs / "nb-test" / "best_stack.yaml").read_text())
    assert {"stt", "stt_es", "tts", "tts_es"} <= set(best_stack["stages"])
    assert best_stack["provenance"]["written_by"] == "07_stack_search"
    assert "Lever:" in _printed(run_dir / "07_stack_search.ipynb")
    # 06: the voice per language, decided with the evidence
    assert "**es: " in _printed(run_dir / "06_quality.ipynb")
    printed = _printed(run_dir / "05_e2e_latency.ipynb")
    assert "the 500 ms goal" in printed
    # 06: WER with intervals on real speech
    wer = kpi.history(store, "nb-test").query("kpi == 'wer'")
    assert len(wer) and (wer["value"].between(0, 200)).all()
    # 10: the report does not decide from a quick run, and judges nothing without an interval
    assert "not decided from a quick run" in _printed(run_dir / "10_report.ipynb")
    _check_no_verdict_without_interval(outputs / "nb-test" / "kpis.yaml")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["browser_problems"] == []
    # 05 runs the best stack too: its figures land under the model name "best", per language
    again = workbook.run_workbook(target="nb-test", quick=True, only=["05_e2e_latency"], progress=False,
                                  params_file=_params(tmp_path, {"05_e2e_latency": {"stack": "best"}}))
    assert again.ok, again.table()
    rows = kpi.history(store, "nb-test").query(f"run_id == '{again.run_id}' and kpi == 'v2v_ttfa_p50_ms'")
    assert set(rows["model"]) == {"best"} and {"2-4 s utterances, en", "2-4 s utterances, es"} <= set(rows["dataset"])


def test_two_full_runs_then_a_quick_run_keep_the_ledger_honest(outputs, tmp_path):
    params = _params(tmp_path, TINY)
    only = ["00_inventory", "10_report"]
    first = workbook.run_workbook(target="ledger-test", only=only, params_file=params, progress=False)
    second = workbook.run_workbook(target="ledger-test", only=only, params_file=params, progress=False)
    quick = workbook.run_workbook(target="ledger-test", only=only, quick=True, params_file=params, progress=False)
    assert first.ok and second.ok and quick.ok, (first.table(), second.table(), quick.table())
    store = ResultsStore(outputs / "results.sqlite")
    trials = store.trials()
    bench_first = trials[(trials["run_id"] == first.run_id) & (trials["experiment"] == "synthetic_benchmark")]
    bench_second = trials[(trials["run_id"] == second.run_id) & (trials["experiment"] == "synthetic_benchmark")]
    assert len(bench_second) == len(bench_first) >= 2  # the second run measured everything again
    assert bench_second["reused_from"].isna().all()
    assert all(a != b for a, b in zip(bench_first["samples"], bench_second["samples"]))  # fresh samples
    for run in (first, second):
        _check_kpi_rows(store, run.run_id, "full")
    _check_kpi_rows(store, quick.run_id, "quick")
    kpis = yaml.safe_load((outputs / "ledger-test" / "kpis.yaml").read_text())["kpis"]
    silero = kpis["latency_p50_ms/silero-vad/synthetic inputs"]
    assert silero["mode"] == "full" and silero["run_id"] == second.run_id  # the quick run did not replace it
    _check_no_verdict_without_interval(outputs / "ledger-test" / "kpis.yaml")
