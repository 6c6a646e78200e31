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


# --- schema 2: modes, trial identity, reuse, migration ------------------------------------------

V1_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, target TEXT NOT NULL, fingerprint TEXT NOT NULL,
    hardware_hash TEXT NOT NULL, git_commit TEXT, versions TEXT NOT NULL, started_at TEXT NOT NULL, notes TEXT);
CREATE TABLE trials (trial_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(run_id),
    experiment TEXT NOT NULL, model_name TEXT, model_sha256 TEXT, config TEXT NOT NULL, config_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), error TEXT, method TEXT, samples TEXT,
    created_at TEXT NOT NULL);
CREATE TABLE results (result_id INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INTEGER NOT NULL REFERENCES trials(trial_id),
    metric TEXT NOT NULL, value REAL, unit TEXT, n INTEGER,
    provenance TEXT NOT NULL CHECK (provenance IN ('measured', 'derived', 'estimated')), extra TEXT,
    created_at TEXT NOT NULL);
CREATE VIEW results_full AS SELECT r.result_id, t.trial_id, t.run_id, r.metric FROM results r
    JOIN trials t ON r.trial_id = t.trial_id;
INSERT INTO runs VALUES ('old-full', 'box', '{}', 'hw', NULL, '{}', '2026-11-01', 'workbook quick=False');
INSERT INTO runs VALUES ('old-quick', 'box', '{}', 'hw', NULL, '{}', '2026-11-02', 'workbook quick=True');
INSERT INTO trials VALUES (1, 'old-full', 'unit', 'm', 'abc', '{}', 'k', 'ok', NULL, '{}', '[1.0]', '2026-11-01');
INSERT INTO trials VALUES (2, 'old-quick', 'unit', 'm', 'abc', '{}', 'k', 'ok', NULL, '{}', '[2.0]', '2026-11-02');
INSERT INTO results VALUES (1, 1, 'latency_p50', 1.0, 'ms', 1, 'measured', '{}', '2026-11-01');
"""


def test_an_old_database_is_backed_up_and_migrated_in_place(tmp_path):
    db = tmp_path / "results.sqlite"
    con = sqlite3.connect(db)
    con.executescript(V1_SCHEMA)
    con.close()
    store = ResultsStore(db)
    version, backup = store.migrated_from
    assert version == 0 and backup.exists() and backup.parent == tmp_path
    old = sqlite3.connect(backup)
    assert old.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2  # the backup is the old database
    trials = store.trials().set_index("trial_id")
    assert list(trials["mode"]) == ["full", "quick"]  # quick runs recognised from their notes
    assert store.results().iloc[0]["value"] == 1.0  # earlier figures intact, view rebuilt with new columns
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 2
    ResultsStore(db)  # opening again does not migrate again
    assert len(list(tmp_path.glob("*backup*"))) == 1


def test_a_newer_database_is_refused_with_both_versions(tmp_path):
    db = tmp_path / "results.sqlite"
    ResultsStore(db)
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 7")
    con.close()
    with pytest.raises(SaraikitError, match="schema version 7, newer than this saraikit \\(version 2\\)"):
        ResultsStore(db)


def test_trials_carry_the_mode_of_their_run(tmp_store):
    quick = tmp_store.start_run(target="a", mode="quick")
    full = tmp_store.start_run(target="a")
    tmp_store.record(quick, make_trial(1))
    tmp_store.record(full, make_trial(1))
    assert list(tmp_store.trials()["mode"]) == ["quick", "full"]
    with pytest.raises(SaraikitError, match="run mode 'smoke'"):
        tmp_store.start_run(mode="smoke")


def test_identity_covers_model_inputs_and_mode_but_not_the_run(tmp_store):
    run1, run2 = tmp_store.start_run(target="a"), tmp_store.start_run(target="a")
    quick = tmp_store.start_run(target="a", mode="quick")
    base = make_trial(1)
    assert tmp_store.identity_of(run1, base) == tmp_store.identity_of(run2, make_trial(1))
    assert tmp_store.identity_of(run1, base) != tmp_store.identity_of(quick, make_trial(1))
    other_model = make_trial(1)
    other_model.model_sha256 = "def"
    other_inputs = make_trial(1)
    other_inputs.inputs_hash = "feeds-2"
    assert len({tmp_store.identity_of(run1, t) for t in (base, other_model, other_inputs)}) == 3


def test_reuse_is_opt_in_and_names_the_original_trial(tmp_store):
    first = tmp_store.start_run(target="a")
    original_id = tmp_store.record(first, make_trial(1))
    second = tmp_store.start_run(target="a")
    assert tmp_store.find_reusable(first, make_trial(1)) is None  # never reuse from the same run
    found = tmp_store.find_reusable(second, make_trial(1))
    assert found["trial_id"] == original_id and found["samples"] == [11.0, 12.0]
    copy_id = tmp_store.record_reused(second, found, make_trial(1))
    third = tmp_store.start_run(target="a")
    again = tmp_store.find_reusable(third, make_trial(1))
    assert again["trial_id"] == copy_id
    third_id = tmp_store.record_reused(third, again, make_trial(1))
    trials = tmp_store.trials().set_index("trial_id")
    assert trials.loc[copy_id, "reused_from"] == original_id
    assert trials.loc[third_id, "reused_from"] == original_id  # always the measured original
    assert json.loads(trials.loc[third_id, "method"])["reused_from_run"] == first
    assert tmp_store.find_reusable(tmp_store.start_run(target="a", mode="quick"), make_trial(1)) is None
