"""The fleet: Dask scheduler and workers on the loopback address, started and stopped by the tests.

Unit tests (no cluster): the unreachable scheduler, worker resources, the CPU
affinity cap of the fingerprint, the head's import of a worker's trials.
Integration tests share one loopback cluster: a ``dask scheduler`` and two
workers started with ``saraikit worker``, one pinned to core 0 with taskset
(so its fingerprint counts one core: a target of its own) and given a models
folder of its own, which starts nearly empty so the head must ship models.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import numpy as np
import pytest

from fleet_helpers import ROOT, LoopbackCluster
from saraikit.core import hardware, paths
from saraikit.core.errors import ClusterError
from saraikit.core.store import Figure, ResultsStore, Trial
from saraikit.fleet import cluster, models_sync


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds():
    start = time.monotonic()
    with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9 within 2 s"):
        cluster.connect("tcp://127.0.0.1:9", timeout_s=2)
    assert time.monotonic() - start < 10
    with pytest.raises(ClusterError, match="scheduler address"):
        cluster.connect("")


def test_workers_advertise_the_benchmark_slot_and_their_target(monkeypatch):
    monkeypatch.setenv("SARAIKIT_TARGET", "Pi 5")
    assert cluster.worker_resources() == {"benchmark": 1, "target-pi-5": 1}
    assert cluster.job_resources("pi-5") == {"benchmark": 1, "target-pi-5": 1}
    assert cluster.job_resources(None) == {"benchmark": 1}  # a shard may run on any worker, still alone
    command = cluster.worker_command("tcp://10.0.0.1:8786")
    assert command[1:5] == ["-m", "dask", "worker", "tcp://10.0.0.1:8786"]
    assert command[command.index("--resources") + 1] == "benchmark=1 target-pi-5=1"
    assert command[command.index("--nthreads") + 1] == "1" and command[command.index("--nworkers") + 1] == "1"


def test_a_saraikit_worker_computes_like_a_local_run_not_with_dasks_one_blas_thread(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the user's own setting is kept
    env = cluster.worker_environment()
    assert env["OPENBLAS_NUM_THREADS"] == "3" and env["OMP_NUM_THREADS"] == "2"
    assert env["DASK_DISTRIBUTED__WORKER__DAEMON"] == "False"  # trials are child processes of the worker


def test_core_counts_are_capped_at_the_cpus_the_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert hardware.logical_cores() == 1 and hardware.physical_cores() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(512)))
    assert hardware.logical_cores() == (hardware.psutil.cpu_count(logical=True) or 1)


def test_the_head_imports_a_workers_trials_in_one_transaction_and_renumbers_references(tmp_path):
    worker_db, head_db = ResultsStore(tmp_path / "w.sqlite"), ResultsStore(tmp_path / "h.sqlite")
    run = worker_db.start_run(target="far-1t", run_id="r1")
    head_db.start_run(target="head-2t")  # ids on the head are already taken
    head_db.start_run(target="far-1t", run_id="r1", fp=hardware.fingerprint())
    first = worker_db.record(run, Trial("bench", {"a": 1}, [Figure("latency_p50", 5.0, "ms", 10)], samples=[5.0]))
    head_db.record("r1", Trial("filler", {}))
    kpi = Trial("kpi", {"kpi": "x"}, [Figure("latency_p50_ms", 5.0, "ms", 10, extra={"source_trials": [first]})])
    second = worker_db.record(run, kpi)
    rows = worker_db.trials(run_id=run)
    identities = list(rows["identity"])
    items = [(first, Trial("bench", {"a": 1}, [Figure("latency_p50", 5.0, "ms", 10)]), None, identities[0]),
             (second, kpi, None, identities[1])]
    mapping = head_db.import_trials("r1", items)
    assert mapping == {first: 2, second: 3}
    stored = head_db.trials(run_id="r1")
    assert list(stored["identity"])[1:] == identities  # identities are kept as measured
    extra = json.loads(head_db.results(experiment="kpi")["extra"].iloc[0])
    assert extra["source_trials"] == [2]  # the KPI points at the head's copy of its source trial
    bad = [(1, Trial("bench", {}), None, None), (2, Trial("bench", {}, [Figure("m", 1.0, provenance="guessed")]),
                                                  None, None)]
    with pytest.raises(Exception, match="provenance"):
        head_db.import_trials("r1", bad)
    assert len(head_db.trials(run_id="r1")) == 3  # all or nothing


# --------------------------------------------------------------------------------------------------
# a real scheduler and two workers on 127.0.0.1


@pytest.fixture(scope="module")
def loopback(tmp_path_factory, provisioned):
    folder = tmp_path_factory.mktemp("cluster")
    small_models = folder / "models-1t"  # the pinned worker's own models folder, empty: the head ships models
    small_models.mkdir()
    lab = LoopbackCluster(folder)
    lab.start_scheduler()
    try:
        client = None
        deadline = time.monotonic() + 30
        while client is None:
            try:
                client = cluster.connect(lab.address, timeout_s=2)
            except ClusterError:
                if time.monotonic() > deadline:
                    raise
        lab.start_worker("w-all-cores", paths.models_dir())
        lab.start_worker("w-all-cores-b", paths.models_dir())  # a pool of two identical workers for shards
        lab.start_worker("w-core0", small_models, pin_core=0)
        lab.wait_for_workers(client, 3)
        lab.small_models = small_models
        yield lab, client
        client.close()
    finally:
        lab.stop()


def _by_name(client, wait_s: float = 60.0):
    """Workers by name, once both are connected (a worker killed by a test comes back after a few seconds)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {w.name: w for w in cluster.workers(client)}
        if {"w-all-cores", "w-all-cores-b", "w-core0"} <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


@pytest.mark.integration
def test_two_loopback_workers_are_two_targets(loopback):
    lab, client = loopback
    found = _by_name(client)
    full, pinned = found["w-all-cores"], found["w-core0"]
    fp = hardware.fingerprint()
    assert full.target == hardware.target_slug(None, fp)
    assert pinned.target.endswith("-1t") and pinned.target != full.target
    assert pinned.described["fingerprint"]["logical_cores"] == 1
    assert pinned.resources == {"benchmark": 1.0, f"target-{pinned.target}": 1.0}
    assert sorted(cluster.pick_targets(client, "all")) == sorted([full.target, pinned.target])
    assert sorted(w.name for w in cluster.pick_targets(client, "all")[full.target]) == ["w-all-cores", "w-all-cores-b"]
    with pytest.raises(ClusterError, match=r"target\(s\) \['nowhere-9t'\] have no worker"):
        cluster.pick_targets(client, "nowhere-9t")


@pytest.mark.integration
def test_a_worker_whose_models_differ_is_refused_and_a_missing_model_is_shipped(loopback):
    lab, client = loopback
    pinned = _by_name(client)["w-core0"]
    source = paths.models_dir() / models_sync.head_models(["silero-vad"])["silero-vad"]["path"]
    (lab.small_models / "silero-vad").mkdir(exist_ok=True)  # a stale copy: same name, other bytes
    (lab.small_models / "silero-vad" / source.name).write_bytes(source.read_bytes()[:-16] + b"\0" * 16)
    with pytest.raises(ClusterError, match=r"refused: its model files differ from the head's by sha256 \(silero-vad"):
        models_sync.ensure_models(client, [pinned.address], ["silero-vad"])
    shutil.rmtree(lab.small_models / "silero-vad")  # the user deletes the stale copy: the head ships its own
    checks = models_sync.ensure_models(client, [pinned.address], ["silero-vad", "whisper-tiny.en"])
    assert "silero-vad" in checks[0].missing and not checks[0].differing
    again = models_sync.ensure_models(client, [pinned.address], ["silero-vad", "whisper-tiny.en"])
    assert again[0].matching == ["silero-vad", "whisper-tiny.en"] and not again[0].missing
    shipped = json.loads((lab.small_models / "manifest.json").read_text())["models"]
    head = models_sync.head_models(["whisper-tiny.en"])["whisper-tiny.en"]
    assert {m["name"]: m["sha256"] for m in shipped}["whisper-tiny.en"] == head["sha256"]
    assert sorted(p.name for p in (lab.small_models / "whisper-tiny.en").iterdir()) == sorted(head["files"])


@pytest.mark.integration
def test_a_wer_run_sharded_over_two_workers_equals_the_local_run_row_for_row(loopback):
    """Shards go to the two workers of the head's own target (a pinned worker is another target: it may decode
    a borderline noisy clip differently, see saraikit.fleet.shards)."""
    from saraikit.data import datasets
    from saraikit.fleet import shards
    from saraikit.quality.stt_eval import evenly, load_utterances, run_accuracy
    from saraikit.quality.transcribe import SttSystem

    lab, client = loopback
    clips = evenly(datasets.load("cards_en").clips, 5)
    utterances = load_utterances(clips, "cards_en")
    system = SttSystem("whisper-tiny.en int8", "whisper-tiny.en", "int8")
    local = run_accuracy([system], {"cards": utterances}, cpu_threads=1, n_boot=500)
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        remote = shards.sharded_accuracy(client, [system], {"cards": utterances}, cpu_threads=1, n_boot=500,
                                         shard_size=2)  # 3 shards
    ran_on = {task["worker"] for task in stream.data if task["key"].startswith("transcribe_shard")}
    pool = {w.address for w in _by_name(client).values() if w.name.startswith("w-all-cores")}
    assert ran_on == pool  # both workers of the target transcribed, the pinned one (another target) none
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(remote.transcripts(), local.transcripts())
    local_report, remote_report = local.scores[(system.label, "cards")].report, remote.scores[(system.label, "cards")].report
    pd_testing.assert_frame_equal(remote_report.rows, local_report.rows)  # per-utterance rows
    assert (remote_report.wer_ci.low, remote_report.wer_ci.high) == (local_report.wer_ci.low, local_report.wer_ci.high)
    pd_testing.assert_frame_equal(remote.table(), local.table())
    assert len(local_report.rows) == 5
    from saraikit.quality.stt_eval import noise_sweeps

    noisy = dict(noises=("white",), snrs=(5,), cpu_threads=1, n_boot=300, clean=local.transcripts())
    local_noise = noise_sweeps([system], {"cards": utterances}, **noisy)
    remote_noise = shards.sharded_noise_sweeps(client, [system], {"cards": utterances}, shard_size=2, **noisy)
    pd_testing.assert_frame_equal(remote_noise.table, local_noise.table)  # same mixtures, same figures
    pd_testing.assert_frame_equal(remote_noise.transcripts, local_noise.transcripts)


@pytest.mark.integration
def test_a_tts_round_trip_sharded_over_the_workers_scores_like_the_local_one(loopback, tmp_path):
    from saraikit.experiments.realinputs import SENTENCES_EN
    from saraikit.fleet import shards
    from saraikit.quality import tts_eval
    from saraikit.quality.transcribe import SttSystem, Transcriber

    lab, client = loopback
    voice = next(v for v in tts_eval.default_voices() if v.label == "espeak-ng-en")
    synthesized = tts_eval.synthesize(voice, list(SENTENCES_EN)[:3], tmp_path / "tts")
    listener = SttSystem("whisper-tiny.en int8", "whisper-tiny.en", "int8")
    local = tts_eval.round_trip(Transcriber(listener, 1), synthesized, n_boot=300)
    remote = shards.sharded_round_trip(client, listener, synthesized, cpu_threads=1, n_boot=300, shard_size=2)
    pd_testing = pytest.importorskip("pandas.testing")
    local_report, remote_report = local["espeak-ng-en"].report, remote["espeak-ng-en"].report
    pd_testing.assert_frame_equal(remote_report.rows, local_report.rows)
    assert len(remote_report.rows) == 3 and remote_report.wer == local_report.wer
    assert (remote_report.wer_ci.low, remote_report.wer_ci.high) == (local_report.wer_ci.low, local_report.wer_ci.high)


def _kill_while_running(client, name: str, key, settle_s: float = 2.0, timeout_s: float = 90.0) -> int:
    """SIGKILL the worker process called ``name`` once it is running the job ``key``; return the killed pid."""
    import signal

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            worker = _by_name(client, wait_s=0).get(name)
            running = client.processing().get(worker.address, ()) if worker else ()
        except (KeyError, OSError):  # the previous process of that worker is still leaving the scheduler
            running = ()
        if key in running and worker.described.get("pid"):
            time.sleep(settle_s)  # the trial's process is measuring by now
            os.kill(worker.described["pid"], signal.SIGKILL)
            return worker.described["pid"]
        time.sleep(0.2)
    raise TimeoutError(f"worker {name} never ran {key}")


@pytest.mark.integration
def test_a_worker_killed_mid_trial_loses_no_stored_row_and_the_trial_is_retried_once_then_failed(loopback, tmp_path):
    from saraikit.experiments.scenario import OnnxBench
    from saraikit.fleet import trials

    lab, client = loopback
    pinned = _by_name(client)["w-core0"]
    models_sync.ensure_models(client, [pinned.address], ["silero-vad"])
    store = ResultsStore(tmp_path / "head.sqlite")
    run_id = trials.run_for_target(store, client, pinned.target, "quick")
    assert store.runs().iloc[0]["hardware_hash"] == pinned.described["hardware_hash"]
    short = OnnxBench("silero-vad", dims={"seq_len": 1}, plan={"warmup": 1, "min_iterations": 20})
    long = OnnxBench("silero-vad", dims={"seq_len": 1}, plan={"warmup": 1, "min_iterations": 20, "min_duration_s": 8})
    first = trials.run_bench(client, pinned.target, "silero-vad", short, store, run_id, "fleet_kill")
    assert first.ok and len(first.raw["samples_ms"]) >= 20

    # killed once: the nanny restarts the worker on the same device and the trial runs again there
    future = trials.submit_bench(client, pinned.target, "silero-vad", long)
    killed = _kill_while_running(client, "w-core0", future.key)
    retried = trials.finish_bench(future, long, 1, store, run_id, "fleet_kill", "silero-vad", None, pinned.target)
    assert retried.ok and retried.raw["worker_pid"] != killed
    assert _by_name(client)["w-core0"].target == pinned.target

    # killed twice: stored as failed, with the reason
    future = trials.submit_bench(client, pinned.target, "silero-vad", long)
    _kill_while_running(client, "w-core0", future.key)
    _kill_while_running(client, "w-core0", future.key)
    failed = trials.finish_bench(future, long, 1, store, run_id, "fleet_kill", "silero-vad", None, pinned.target)
    assert not failed.ok and "worker died while running the job, twice" in failed.error

    stored = store.trials(run_id=run_id)
    assert list(stored["status"]) == ["ok", "ok", "failed"]
    assert stored.iloc[0]["samples"] == first.raw["samples_ms"]  # the row stored before the kills is intact
    assert "worker died" in stored.iloc[2]["error"]
    assert all(json.loads(m)["target"] == pinned.target for m in stored["method"])


TINY_NOTEBOOK = [
    ("md", "# A tiny fleet notebook\n\nOne benchmark of the Silero VAD on synthetic inputs in two fresh processes, "
           "stored as a trial and a KPI row by the worker in its scratch database; the head copies both into the "
           "one results database and builds one index across the targets of the fleet."),
    ("params", "target = None\nrun_id = None\nquick = False\nprocesses = 2"),
    ("code", "from saraikit.experiments import bench\nfrom saraikit.models import catalog\n"
             "from saraikit.notebook import setup\nfrom saraikit.report.kpi import record_kpi\n"
             "session = setup(globals(), '01_tiny')\nentry = catalog.model_entry('silero-vad')\n"
             "spec = bench.OnnxBench(str(catalog.model_path('silero-vad')), dims={'seq_len': 1},\n"
             "                       plan={'warmup': 1, 'min_iterations': 20})\n"
             "out = bench.bench_onnx(spec, store=session.store, run_id=run_id, experiment='tiny',\n"
             "                       model_name='silero-vad', model_sha256=entry.sha256, processes=processes)\n"
             "record_kpi(session.store, run_id, 'latency_p50_ms', out.spread.median, n=out.summary.n,\n"
             "           ci=(out.spread.ci_low, out.spread.ci_high), dataset='synthetic inputs', model_name='silero-vad',\n"
             "           model_sha256=entry.sha256, source_trials=[out.trial_id])\n"
             "print('measured on', session.target, 'cores', session.fingerprint.logical_cores)"),
]


@pytest.mark.integration
def test_a_fleet_workbook_on_two_targets_gives_one_database_and_one_index(loopback, tmp_path, monkeypatch):
    import nbformat
    sys.path.insert(0, str(ROOT / "tools"))
    from nbgen import write
    from saraikit.report.fleet_workbook import run_fleet_workbook

    lab, client = loopback
    (tmp_path / "notebooks").mkdir()
    write(tmp_path / "notebooks" / "01_tiny.ipynb", TINY_NOTEBOOK)
    monkeypatch.setenv("SARAIKIT_NOTEBOOKS", str(tmp_path / "notebooks"))
    monkeypatch.setenv("SARAIKIT_OUTPUTS", str(tmp_path / "outputs"))
    (tmp_path / "params.yaml").write_text("{}\n")
    found = _by_name(client)
    wanted = [found["w-all-cores"].target, found["w-core0"].target]
    fleet = run_fleet_workbook(lab.address, targets=",".join(wanted), quick=True, params_file=tmp_path / "params.yaml",
                               models=["silero-vad"])
    assert fleet.ok, fleet.table()
    assert sorted(fleet.runs) == sorted(wanted)
    store = ResultsStore(tmp_path / "outputs" / "results.sqlite")  # the head's: the only database written
    runs = store.runs().set_index("target")
    for name, target in (("w-all-cores", wanted[0]), ("w-core0", wanted[1])):
        run = fleet.runs[target]
        assert runs.loc[target, "run_id"] == run.run_id and runs.loc[target, "mode"] == "quick"
        assert runs.loc[target, "hardware_hash"] == found[name].described["hardware_hash"]
        trials = store.trials(run_id=run.run_id)
        assert list(trials["experiment"]) == ["tiny", "kpi"] and (trials["status"] == "ok").all()
        assert len(trials.iloc[0]["samples"]) >= 20
        kpi_extra = json.loads(store.results(experiment="kpi", run_id=run.run_id)["extra"].iloc[0])
        assert kpi_extra["source_trials"] == [int(trials.iloc[0]["trial_id"])]  # renumbered on the head
        executed = tmp_path / "outputs" / target / "01_tiny.ipynb"
        printed = "".join(o.get("text", "") for c in nbformat.read(executed, as_version=4).cells
                          for o in c.get("outputs", []))
        cores = found[name].described["fingerprint"]["logical_cores"]
        assert f"measured on {target} cores {cores}" in printed
        assert (tmp_path / "outputs" / target / "01_tiny.report.html").exists()
        assert json.loads((tmp_path / "outputs" / target / "runs" / run.run_id / "summary.json").read_text())["target"] == target
    index = (tmp_path / "outputs" / "index.html").read_text()
    assert all(f"<h2>{t}</h2>" in index for t in wanted)


@pytest.mark.integration
def test_06_on_the_cluster_transcribes_in_shards_and_stores_its_figures(loopback, tmp_path, monkeypatch):
    from distributed import get_task_stream

    from saraikit.report import kpi, workbook

    lab, client = loopback
    monkeypatch.setenv("SARAIKIT_OUTPUTS", str(tmp_path / "outputs"))
    small = {"cluster": lab.address, "shard_size": 2, "only_systems": ["whisper-tiny.en int8"], "spanish_clips": 2,
             "noise_types": ["white"], "snrs_db": [10], "noise_clips": 2, "noise_systems": ["whisper-tiny.en int8"],
             "kokoro_styles": [], "kokoro_es_variants": [], "tts_sentences_en": 2, "tts_sentences_es": 2,
             "mos_clips": 2, "kit_sentences": 1, "datasets": ["cards_en"]}
    (tmp_path / "params.yaml").write_text(json.dumps({"06_quality": small}))
    with get_task_stream(client) as stream:
        result = workbook.run_workbook(target="shard-test", quick=True, only=["06_quality"],
                                       params_file=tmp_path / "params.yaml", progress=False)
    assert result.ok, result.table()
    assert sum(1 for task in stream.data if task["key"].startswith("transcribe_shard")) >= 3
    store = ResultsStore(tmp_path / "outputs" / "results.sqlite")
    wer = kpi.history(store, "shard-test").query("kpi == 'wer'")
    assert len(wer) and wer["value"].between(0, 100).all()


def test_the_cli_says_which_scheduler_it_cannot_reach(capsys):
    from saraikit import cli

    assert cli.main(["workbook", "--cluster", "tcp://127.0.0.1:9", "--quick"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert cli.main(["worker", "--scheduler", "tcp://127.0.0.1:9", "--timeout", "1"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s" in capsys.readouterr().err


@pytest.mark.integration
def test_a_grid_search_on_a_targets_worker_is_stored_by_the_head_under_the_workers_fingerprint(loopback, tmp_path,
                                                                                                capsys):
    from saraikit import cli
    from saraikit.experiments import grid
    from saraikit.fleet import trials

    lab, client = loopback
    pinned = _by_name(client)["w-core0"]
    models_sync.ensure_models(client, [pinned.address], ["silero-vad"])
    store = ResultsStore(tmp_path / "head.sqlite")
    run_id = trials.run_for_target(store, client, pinned.target, "quick")
    assert trials.run_for_target(store, client, pinned.target, "quick", run_id=run_id) == run_id
    measure = trials.cluster_measure(client, pinned.target, "silero-vad", "sha-of-head", store, run_id, "fleet_grid",
                                     dims={"seq_len": 1})
    configs = grid.expand({"intra_op_num_threads": [1, 2]})
    result = grid.exhaustive(configs, measure, {"warmup": 1, "min_iterations": 20}, processes=2)
    assert all(c.rounds == 2 and not c.failed for c in result.candidates)
    stored = store.trials(experiment="fleet_grid", run_id=run_id)
    assert len(stored) == 4 and (stored["status"] == "ok").all() and (stored["model_sha256"] == "sha-of-head").all()
    assert store.runs().iloc[0]["hardware_hash"] == pinned.described["hardware_hash"]
    warm = trials.cluster_measure(client, pinned.target, "silero-vad", None, store, run_id, "fleet_warm",
                                  dims={"seq_len": 1}, warm=True)
    grid.successive_halving(configs, warm, {"warmup": 1, "min_iterations": 10}, max_rounds=2)
    methods = [json.loads(m) for m in store.trials(experiment="fleet_warm", run_id=run_id)["method"]]
    assert [m["process"] for m in methods] == ["warm (on the worker, one per round)"] * 2
    assert cli.main(["cluster", lab.address]) == 0
    listed = capsys.readouterr().out
    assert pinned.target in listed and "w-core0" in listed and "w-all-cores" in listed
