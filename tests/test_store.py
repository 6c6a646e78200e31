import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from saraikit.core.errors import SaraikitError
from saraikit.core.store import Figure, ResultsStore, Trial


def make_trial(i: int, status="ok") -> Trial:
    return Trial(
        experiment="unit", config={"threads": i}, model_name="m", model_sha256="abc",
        figures=[Figure("latency_p50", 10.0 + i, "ms", n=50), Figure("load_time", 0.5, "s", n=1)],
        samples=[10.0 + i, 11.0 + i], status=status,
    )


def test_rows_round_trip_with_run_metadata(tmp_store):
    run = tmp_store.start_run(target="Test Box", notes="unit")
    tmp_store.record(run, make_trial(1))
    frame = tmp_store.results()
    assert list(frame["metric"]) == ["latency_p50", "load_time"]
    assert list(frame["value"]) == [11.0, 0.5]
    row = frame.iloc[0]
    assert row["target"] == "test-box" and row["run_id"] == run
    assert row["unit"] == "ms" and row["n"] == 50 and row["provenance"] == "measured"
    assert json.loads(row["config"]) == {"threads": 1}
    assert "onnxruntime" in json.loads(row["versions"])
    assert json.loads(row["fingerprint"])["logical_cores"] >= 1
    trials = tmp_store.trials()
    assert trials.iloc[0]["samples"] == [11.0, 12.0]


def test_failed_trial_is_a_row_with_its_reason(tmp_store):
    run = tmp_store.start_run()
    trial = Trial(experiment="unit", config={"threads": 9}, status="failed", error="crashed: SIGSEGV")
    tmp_store.record(run, trial)
    trials = tmp_store.trials()
    assert trials.iloc[0]["status"] == "failed" and trials.iloc[0]["error"] == "crashed: SIGSEGV"


def test_has_trial_supports_resuming(tmp_store):
    run = tmp_store.start_run(target="a")
    tmp_store.record(run, make_trial(1))
    tmp_store.record(run, make_trial(2, status="failed"))
    key1, key2 = make_trial(1).key(), make_trial(2).key()
    assert tmp_store.has_trial("unit", key1, "abc")
    assert not tmp_store.has_trial("unit", key2, "abc")  # failed trials are retried
    assert not tmp_store.has_trial("unit", key1, "other-sha")
    assert not tmp_store.has_trial("unit", key1, "abc", target="b")


def test_bad_provenance_is_rejected_and_nothing_is_written(tmp_store):
    run = tmp_store.start_run()
    trial = make_trial(1)
    trial.figures.append(Figure("wer", 0.02, provenance="guessed"))
    with pytest.raises(SaraikitError, match="provenance 'guessed'"):
        tmp_store.record(run, trial)
    assert tmp_store.results().empty


def test_a_failing_insert_rolls_back_the_whole_trial(tmp_store):
    run = tmp_store.start_run()
    trial = make_trial(1)
    trial.figures.append(Figure("bad", "not a number"))  # float() fails mid-trial
    with pytest.raises(ValueError):
        tmp_store.record(run, trial)
    assert tmp_store.trials().empty and tmp_store.results().empty


WRITER = textwrap.dedent("""
    import sys, time
    from saraikit.core.store import ResultsStore, Trial, Figure
    store = ResultsStore(sys.argv[1])
    run = store.start_run(target="killed")
    i = 0
    while True:
        i += 1
        store.record(run, Trial("kill", {"i": i}, [Figure("x", float(i), "ms", n=1)] * 20))
        print(i, flush=True)
""")


def test_killed_writer_leaves_earlier_rows_intact(tmp_path):
    db = tmp_path / "results.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    written = 0
    deadline = time.time() + 60
    while written < 30 and time.time() < deadline:
        written = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert written >= 30
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    trials = con.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    # every trial that finished has all of its 20 figures; none is half written
    per_trial = con.execute("SELECT trial_id, COUNT(*) FROM results GROUP BY trial_id").fetchall()
    assert trials >= written
    assert all(count == 20 for _, count in per_trial) and len(per_trial) == trials
    store = ResultsStore(db)  # still opens and accepts writes
    store.record(store.start_run(), Trial("after", {}, [Figure("y", 1.0)]))
    assert len(store.results(experiment="after")) == 1
