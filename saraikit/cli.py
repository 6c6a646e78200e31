"""The ``saraikit`` command line.

    saraikit models provision [--verify] [--only NAME ...]
    saraikit models list
    saraikit inventory
    saraikit hardware
    saraikit bench MODEL [--ort KEY=VALUE ...] [--dim NAME=INT ...] [--config FILE] [--warmup N]
                         [--min-iterations N] [--min-duration S] [--processes N] [--inline] [--timeout S]
    saraikit overhead MODEL [--dim NAME=INT ...]
    saraikit workbook [--target NAME] [--quick] [--only NOTEBOOK ...] [--params FILE] [--resume RUN_ID|last]
                      [--cluster ADDRESS [--targets all|A,B]]
    saraikit worker --scheduler ADDRESS [--target NAME]
    saraikit cluster ADDRESS             the workers of a Dask scheduler, their targets and model check
    saraikit results [--experiment NAME] [--run RUN_ID]
    saraikit kpis [--target NAME]
    saraikit speak WAV [WAV ...] [--stack default|best|FILE] [--language en|es] [--target NAME] [--early-stt]
    saraikit index

Bad input ends with ``error: <what and where>`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from saraikit.core.errors import ConfigError, SaraikitError
from saraikit.models.catalog import resolve_model


def _key_values(pairs: list[str], what: str) -> dict:
    parsed = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"{what} {pair!r} must look like KEY=VALUE")
        key, value = pair.split("=", 1)
        parsed[key] = yaml.safe_load(value)  # "4" -> 4, "true" -> True, "ALL" -> "ALL"
    return parsed


def _resolve_model(name_or_path: str) -> tuple[Path, str, str | None]:
    model = resolve_model(name_or_path)
    return model.path, model.name, model.sha256()


def cmd_models(args) -> int:
    from saraikit.models import catalog  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    if args.action == "provision":
        catalog.provision(verify=args.verify, only=args.only,
                         progress=lambda name, status: print(f"{name:<26} {status}"))
        print(f"manifest: {catalog.paths.models_dir() / catalog.MANIFEST_NAME}")
    else:
        import pandas as pd

        rows = [{"name": e.name, "role": e.role, "format": e.format, "MB": round(e.bytes / 1e6, 1),
                 "sha256": e.sha256[:12], "source": e.package or e.source, "license": e.license or ""}
                for e in catalog.list_models()]
        print(pd.DataFrame(rows).to_string(index=False) if rows else "no models: run `saraikit models provision`")
    return 0


def cmd_inventory(args) -> int:
    from saraikit.models import catalog, inspect, inventory  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    infos = [inspect.inspect_model(catalog.paths.models_dir() / e.path) for e in catalog.list_models()]
    print(inventory.inventory_frame(infos).to_string(index=False))
    return 0


def cmd_hardware(args) -> int:
    from saraikit.core.hardware import fingerprint, target_slug  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    fp = fingerprint()
    print(f"target: {target_slug(args.target, fp)}")
    for key, value in fp.card().items():
        print(f"{key:<18} {value}")
    return 0


def cmd_bench(args) -> int:
    from saraikit.core import stats  # lazy: `saraikit --help` stays fast; a command imports only what it needs
    from saraikit.core.store import ResultsStore  # lazy: `saraikit --help` stays fast; a command imports only what it needs
    from saraikit.experiments import bench  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    path, name, sha = _resolve_model(args.model)
    values = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    values = dict(values or {})
    values.setdefault("ort", {}).update(_key_values(args.ort, "--ort"))
    values.setdefault("dims", {}).update(_key_values(args.dim, "--dim"))
    plan = values.setdefault("plan", {})
    for key in ("warmup", "min_iterations", "min_duration_s"):
        if getattr(args, key) is not None:
            plan[key] = getattr(args, key)
    spec = bench.spec_from_dict(str(path), values)
    store = ResultsStore(args.db) if args.db else ResultsStore()
    run_id = store.start_run(target=args.target, notes="cli bench")
    outcome = bench.bench_onnx(spec, store=store, run_id=run_id, model_name=name, model_sha256=sha,
                               isolated=not args.inline, timeout_s=args.timeout, processes=args.processes)
    if not outcome.ok:
        print(f"error: benchmark of {name} failed: {outcome.error}", file=sys.stderr)
        return 1
    s = outcome.summary
    print(f"{name}  inputs: {spec.inputs_kind} {outcome.raw['input_shapes']}  ORT: {spec.config()['ort']}")
    print(f"load {outcome.raw['load_s']:.3f} s   first inference {outcome.raw['first_inference_ms']:.1f} ms")
    print(stats.format_summary(s, "latency"))
    print(f"processes: {outcome.spread.format_processes()}; the P50 CI is a hierarchical bootstrap over them")
    print(f"peak RSS {outcome.raw['memory']['after']['peak_rss_bytes'] / 2**20:.0f} MiB   "
          f"stored as trial {outcome.trial_id} of run {run_id} in {store.path}")
    return 0


def cmd_overhead(args) -> int:
    from saraikit.experiments import bench  # lazy: `saraikit --help` stays fast; a command imports only what it needs
    from saraikit.core.store import ResultsStore  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    path, name, sha = _resolve_model(args.model)
    result = bench.harness_overhead(str(path), dims=_key_values(args.dim, "--dim"), rounds=args.rounds,
                                    round_s=args.round_s)
    store = ResultsStore()
    store.record(store.start_run(notes="cli overhead"), bench.overhead_trial(str(path), result, sha, name))
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def cmd_workbook(args) -> int:
    if args.cluster:
        if args.resume:
            raise ConfigError("--resume resumes a run on this machine; a fleet run is resumed by running it again "
                              "(every notebook a target finished is already in the head's database)")
        from saraikit.report.fleet_workbook import run_fleet_workbook  # lazy: `saraikit --help` stays fast; a command imports only what it needs

        fleet = run_fleet_workbook(args.cluster, targets=args.targets, quick=args.quick, only=args.only,
                                   params_file=args.params)
        print(fleet.table())
        return 0 if fleet.ok else 1
    from saraikit.report.workbook import run_workbook  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    result = run_workbook(target=args.target, quick=args.quick, only=args.only, params_file=args.params,
                          resume=args.resume)
    print(result.table())
    return 0 if result.ok else 1


def cmd_speak(args) -> int:
    """Voice in, voice out: each WAV through a stack's pipeline in a worker process; one line of timings each."""
    from saraikit.data.audio import read_audio  # lazy: `saraikit --help` stays fast
    from saraikit.engines.pipeline import PipelineRunner  # lazy: as above
    from saraikit.models.stack import load_stack  # lazy: as above

    stack = load_stack(args.stack, target=args.target)
    if args.early_stt:
        stack = {**stack, "pipeline": {**(stack.get("pipeline") or {}), "early_stt": True}}
    failed = 0
    with PipelineRunner(stack, max_tokens=args.max_tokens) as runner:
        runner.start(warm=True)
        for wav in args.wavs:
            row = runner.run(read_audio(wav), args.language, isolated=False, id=wav)
            failed += row["status"] != "ok"
            timings = ", ".join(f"{k} {row[k]:.0f} ms" for k in ("ttfa_ms", "stt_ms", "llm_ttft_ms", "audio_path_ms")
                                if row.get(k) is not None)
            print(f"{wav}: {row['status']}; {timings or row.get('reason', '')}\n"
                  f"  heard:    {row.get('transcript', '')!r}\n  answered: {row.get('answer', '')!r}")
    print("(single utterances, one worker process: figures without an interval; 05_e2e_latency measures with CIs)")
    return 1 if failed else 0


def cmd_worker(args) -> int:
    from saraikit.fleet import cluster  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    cluster.connect(args.scheduler, args.timeout).close()  # a clear error in seconds, not a silent retry loop
    os.environ.update(cluster.worker_environment())
    if args.target:
        os.environ["SARAIKIT_TARGET"] = args.target
    command = cluster.worker_command(args.scheduler, args.target, args.name)
    print(f"saraikit worker: resources {command[command.index('--resources') + 1]!r}, scheduler {args.scheduler}",
          flush=True)
    os.execv(command[0], command)
    return 0


def cmd_cluster(args) -> int:
    from saraikit.fleet import cluster, models_sync  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    client = cluster.connect(args.address, args.timeout)
    try:
        found = cluster.workers(client)
        for worker in found:
            print(f"{worker.target:<24} {worker.address:<28} {worker.name}  pid {worker.described.get('pid')}")
        if not found:
            print(f"no saraikit worker on {args.address}")
        if found and args.check_models:
            for check in models_sync.ensure_models(client, [w.address for w in found], ship=args.ship):
                print(f"{check.address}: {len(check.matching)} models match, shipped {check.missing or 'none'}")
    finally:
        client.close()
    return 0


def cmd_results(args) -> int:
    from saraikit.core.store import ResultsStore  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    frame = ResultsStore().results(experiment=args.experiment, run_id=args.run)
    columns = ["run_id", "target", "experiment", "model_name", "metric", "value", "unit", "n", "provenance"]
    print(frame[columns].tail(args.last).to_string(index=False) if not frame.empty else "no results yet")
    return 0


def cmd_index(args) -> int:
    from saraikit.report.index_page import build_index  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    print(build_index())
    return 0


def cmd_kpis(args) -> int:
    from saraikit.report import kpi  # lazy: `saraikit --help` stays fast; a command imports only what it needs
    from saraikit.core.hardware import target_slug  # lazy: `saraikit --help` stays fast; a command imports only what it needs
    from saraikit.core.store import ResultsStore  # lazy: `saraikit --help` stays fast; a command imports only what it needs

    table = kpi.ledger(ResultsStore(), target_slug(args.target))
    columns = ["kpi", "model", "dataset", "value", "unit", "ci_low", "ci_high", "n", "provenance", "verdict"]
    print(table[columns].to_string(index=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saraikit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="provision or list models")
    p.add_argument("action", choices=["provision", "list"])
    p.add_argument("--verify", action="store_true", help="re-hash every file even when unchanged")
    p.add_argument("--only", nargs="*", help="default model names to provision")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("inventory", help="inspect every model in models/")
    p.set_defaults(func=cmd_inventory)

    p = sub.add_parser("hardware", help="print the hardware fingerprint")
    p.add_argument("--target")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("bench", help="benchmark one ONNX model (synthetic inputs)")
    p.add_argument("model", help="a model name from `saraikit models list`, or a path")
    p.add_argument("--ort", nargs="*", default=[], help="ONNX Runtime options, e.g. intra_op_num_threads=2")
    p.add_argument("--dim", nargs="*", default=[], help="dynamic dimensions, e.g. batch=1 phonemes=60")
    p.add_argument("--config", help="YAML/JSON file with keys ort, plan, dims, values, seed")
    p.add_argument("--warmup", type=int)
    p.add_argument("--min-iterations", dest="min_iterations", type=int)
    p.add_argument("--min-duration", dest="min_duration_s", type=float)
    p.add_argument("--processes", type=int, help="fresh processes to spread the plan over "
                   "(default 3; 1 with --inline): process-to-process drift enters the CI")
    p.add_argument("--inline", action="store_true", help="run in this process instead of fresh ones")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--target")
    p.add_argument("--db", help="results database (default outputs/results.sqlite)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("overhead", help="harness overhead versus a bare session.run loop")
    p.add_argument("model")
    p.add_argument("--dim", nargs="*", default=[])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--round-s", dest="round_s", type=float, default=0.5, help="seconds per round and method")
    p.set_defaults(func=cmd_overhead)

    p = sub.add_parser("workbook", help="run every notebook and export HTML")
    p.add_argument("--target")
    p.add_argument("--quick", action="store_true", help="small samples, same code paths")
    p.add_argument("--only", nargs="*")
    p.add_argument("--params", help="parameter YAML (default params/<target>.yaml or params/default.yaml)")
    p.add_argument("--cluster", help="Dask scheduler address (tcp://HOST:8786): run on the workers of each target")
    p.add_argument("--targets", default="all", help="with --cluster: all, or a comma-separated list of targets")
    p.add_argument("--resume", metavar="RUN_ID", help="continue a run that was killed: RUN_ID or 'last'; the "
                   "notebooks it finished are kept, the others run again under the same run id")
    p.set_defaults(func=cmd_workbook)

    p = sub.add_parser("worker", help="start a Dask worker advertising this device's target and benchmark slot")
    p.add_argument("--scheduler", required=True, help="the scheduler's address, e.g. tcp://192.168.1.10:8786")
    p.add_argument("--target", help="target name (default: derived from the hardware fingerprint)")
    p.add_argument("--name", help="worker name (default: <target>@<host>-<pid>)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to reach the scheduler")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("cluster", help="list a scheduler's saraikit workers and check their models")
    p.add_argument("address")
    p.add_argument("--check-models", action="store_true", help="compare every worker's models with this machine's")
    p.add_argument("--no-ship", dest="ship", action="store_false", help="with --check-models: do not ship missing ones")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("index", help="rebuild outputs/index.html (all targets and runs)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("kpis", help="the KPI ledger of a target")
    p.add_argument("--target")
    p.set_defaults(func=cmd_kpis)

    p = sub.add_parser("speak", help="run WAV files through a stack's pipeline (voice in, voice out) and time them")
    p.add_argument("wavs", nargs="+", metavar="WAV")
    p.add_argument("--stack", default="default", help="default, best (07_stack_search's) or a stack YAML path")
    p.add_argument("--language", default="en", help="the language of the WAV files (en, es)")
    p.add_argument("--target", help="hardware target whose best stack to use (default: this machine)")
    p.add_argument("--early-stt", dest="early_stt", action="store_true", help="start STT at the first trailing silence")
    p.add_argument("--max-tokens", dest="max_tokens", type=int, default=40)
    p.set_defaults(func=cmd_speak)

    p = sub.add_parser("results", help="print stored figures")
    p.add_argument("--experiment")
    p.add_argument("--run")
    p.add_argument("--last", type=int, default=40)
    p.set_defaults(func=cmd_results)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SaraikitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
