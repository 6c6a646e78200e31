"""Run the workbook: every notebook through papermill, then HTML through nbconvert.

Notebooks are functions (papermill): each has one cell tagged ``parameters``;
the workbook injects ``target``, ``run_id``, ``quick`` and the values of the
per-target parameter file, and writes one executed copy per run:

    outputs/<target>/runs/<run id>/<notebook>.ipynb    executed notebook
    outputs/<target>/runs/<run id>/<notebook>.html     HTML with code
    outputs/<target>/runs/<run id>/<notebook>.report.html   HTML without code cells
    outputs/<target>/<notebook>.ipynb|.html            copies of the latest run
    outputs/<target>/runs/<run id>/workbook.log, summary.json

A notebook that fails does not stop the others: its partial executed copy is
still exported (papermill marks the failing cell) and the summary says why.
``summary.json`` is rewritten after every notebook, so a run whose head was
killed can be resumed (``--resume RUN_ID`` or ``--resume last``): the
notebooks it finished are kept, the others run again under the same run id.

Parameter files (YAML) live in ``params/``: ``params/<target>.yaml`` when it
exists, else ``params/default.yaml``. Top-level keys are notebook names
(without ``.ipynb``) mapping to parameters; the key ``all`` applies to every
notebook. Unknown notebook names are rejected.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from saraikit.core import paths
from saraikit.core.errors import ConfigError
from saraikit.core.hardware import target_slug
from saraikit.core.io import atomic_copy, atomic_write_json, atomic_write_text
from saraikit.core.store import ResultsStore
from saraikit.report.browsercheck import check_pages, chromium_available
from saraikit.report.index_page import build_index

log = logging.getLogger("saraikit.workbook")


@dataclass
class NotebookRun:
    name: str
    status: str  # ok | failed
    seconds: float
    executed: str | None = None
    html: str | None = None
    report_html: str | None = None
    error: str | None = None


@dataclass
class WorkbookRun:
    target: str
    run_id: str
    out_dir: str
    quick: bool
    notebooks: list[NotebookRun] = field(default_factory=list)
    seconds: float = 0.0
    browser_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(nb.status == "ok" for nb in self.notebooks) and not self.browser_problems

    def table(self) -> str:
        lines = [f"{'notebook':<24} {'status':<8} {'seconds':>8}  error"]
        for nb in self.notebooks:
            error = (nb.error or "").splitlines()[0][:90] if nb.error else ""
            lines.append(f"{nb.name:<24} {nb.status:<8} {nb.seconds:>8.1f}  {error}")
        lines += [f"browser check: {p}" for p in self.browser_problems]
        lines.append(f"total {self.seconds:.1f} s; outputs in {self.out_dir}")
        return "\n".join(lines)


def available_notebooks() -> list[Path]:
    return sorted(p for p in paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def load_params(target: str, params_file: str | Path | None = None) -> dict[str, dict]:
    """Per-notebook parameters from the target's YAML file (or the default one)."""
    if params_file is None:
        folder = paths.project_root() / "params"
        candidate = folder / f"{target}.yaml"
        params_file = candidate if candidate.exists() else folder / "default.yaml"
    params_file = Path(params_file)
    if not params_file.exists():
        return {}
    data = yaml.safe_load(params_file.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{params_file}: expected a mapping of notebook name -> parameters")
    names = {p.stem for p in available_notebooks()} | {"all"}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{params_file}: unknown notebook(s) {sorted(unknown)}; known: {sorted(names)}")
    return data


def quick_file() -> Path:
    return paths.project_root() / "params" / "quick.yaml"


def quick_values(notebook: str, path: Path | None = None) -> dict:
    """The quick-mode values for ``notebook`` from ``params/quick.yaml`` (``all`` first, then the notebook's)."""
    path = path or quick_file()
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of notebook name -> parameters")
    return {**(data.get("all") or {}), **(data.get(notebook) or {})}


def select(only: list[str] | None) -> list[Path]:
    notebooks = available_notebooks()
    if not only:
        return notebooks
    chosen = [p for p in notebooks if any(p.stem == o or p.stem.startswith(o) for o in only)]
    missing = [o for o in only if not any(p.stem == o or p.stem.startswith(o) for p in notebooks)]
    if missing:
        raise ConfigError(f"unknown notebook(s) {missing}; available: {[p.stem for p in notebooks]}")
    return chosen


def export_html(executed: Path, hide_code: bool) -> Path:
    """Write an HTML copy next to the executed notebook; images are embedded as data URIs.

    The ``offline`` template (``saraikit/templates``) drops the scripts JupyterLab's
    template loads from the web, so one file can be mailed and opened anywhere.
    """
    import nbformat
    from nbconvert import HTMLExporter

    templates = Path(__file__).parent / "templates"
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(templates)],
                            exclude_input=hide_code, exclude_input_prompt=hide_code,
                            exclude_output_prompt=hide_code)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    return atomic_write_text(executed.with_suffix(".report.html" if hide_code else ".html"), body)


def execute(notebook: Path, out_path: Path, parameters: dict) -> NotebookRun:
    import papermill

    start = time.perf_counter()
    status, error = "ok", None
    try:
        # capture_fd_output=False: what C libraries and worker processes write to the kernel's file
        # descriptors (llama.cpp logs, progress of spawned trials) goes to the terminal, not into the report.
        papermill.execute_notebook(str(notebook), str(out_path), parameters=parameters,
                                   cwd=str(notebook.parent), progress_bar=False, kernel_name="python3",
                                   extra_arguments=["--IPKernelApp.capture_fd_output=False"])
    except Exception as exc:  # noqa: BLE001 - a failed notebook is reported, the others go on
        status = "failed"
        error = f"{type(exc).__name__}: {exc}"
        log.error("%s failed: %s", notebook.name, error)
        log.debug(traceback.format_exc())
    run = NotebookRun(notebook.stem, status, time.perf_counter() - start, error=error)
    if out_path.exists():
        run.executed = str(out_path)
        for hide_code in (False, True):
            try:
                html = export_html(out_path, hide_code)
                if hide_code:
                    run.report_html = str(html)
                else:
                    run.html = str(html)
            except Exception as exc:  # noqa: BLE001
                log.error("HTML export of %s failed: %s", out_path.name, exc)
    return run


def resumable(store: ResultsStore, target: str, quick: bool, run_id: str) -> tuple[str, dict[str, NotebookRun]]:
    """The run to resume (``"last"``: this target's newest run of the same mode) and its finished notebooks.

    A run resumes under its own id: notebooks that finished ``ok`` (by its
    ``summary.json``, written after every notebook) are kept as they are; the
    others run again and add their trials to the run. Trials stored by a
    notebook that was killed midway stay in the database, unreferenced by KPIs.
    """
    mode = "quick" if quick else "full"
    runs = store.runs()
    mine = runs[(runs["target"] == target) & (runs["mode"] == mode)]
    if run_id == "last":
        if mine.empty:
            raise ConfigError(f"no {mode} run of target {target!r} to resume in {store.path}")
        run_id = str(mine.iloc[-1]["run_id"])
    elif run_id not in set(mine["run_id"]):
        raise ConfigError(f"cannot resume run {run_id!r}: {store.path} has no {mode} run with that id for target "
                          f"{target!r} (runs of it: {list(mine['run_id'])[-3:]})")
    summary = paths.outputs_dir() / target / "runs" / run_id / "summary.json"
    finished = {}
    if summary.exists():
        for entry in json.loads(summary.read_text()).get("notebooks", []):
            if entry.get("status") == "ok":
                finished[entry["name"]] = NotebookRun(**entry)
    return run_id, finished


def run_workbook(target: str | None = None, quick: bool = False, only: list[str] | None = None,
                 params_file: str | Path | None = None, progress: bool = True,
                 resume: str | None = None) -> WorkbookRun:
    """Every notebook (or ``only`` these) in a new run, or in the run ``resume`` names (see :func:`resumable`)."""
    target = target_slug(target)
    notebooks = select(only)
    params = load_params(target, params_file)
    store = ResultsStore()
    finished: dict[str, NotebookRun] = {}
    if resume:
        run_id, finished = resumable(store, target, quick, resume)
    else:
        run_id = store.start_run(target=target, notes=f"workbook quick={quick}", mode="quick" if quick else "full")
    os.environ["SARAIKIT_BATCH"] = "1"  # kernels inherit it: progress on the terminal, not in the reports
    os.environ["TQDM_DISABLE"] = "1"  # third-party progress bars stay out of the executed notebooks
    out_dir = paths.outputs_dir() / target / "runs" / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / "workbook.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    result = WorkbookRun(target, run_id, str(out_dir), quick)
    start = time.perf_counter()
    try:
        from tqdm import tqdm

        bar = tqdm(notebooks, desc="workbook", unit="notebook", disable=not progress)
        for notebook in bar:
            bar.set_postfix_str(notebook.stem)
            if notebook.stem in finished:
                log.info("%s already finished in run %s: kept", notebook.name, run_id)
                result.notebooks.append(finished[notebook.stem])
                continue
            quick_sizes = quick_values(notebook.stem) if quick else {}
            parameters = {**quick_sizes, **params.get("all", {}), **params.get(notebook.stem, {}),
                          "target": target, "run_id": run_id, "quick": quick}
            log.info("running %s with %s", notebook.name, json.dumps(parameters, default=str))
            nb_run = execute(notebook, out_dir / notebook.name, parameters)
            log.info("%s %s in %.1f s", notebook.name, nb_run.status, nb_run.seconds)
            result.notebooks.append(nb_run)
            publish_latest(out_dir, paths.outputs_dir() / target, notebook.stem)
            atomic_write_json(out_dir / "summary.json", asdict(result))  # a killed head leaves what finished
    finally:
        result.seconds = time.perf_counter() - start
        atomic_write_json(out_dir / "summary.json", asdict(result))
        try:
            build_index(store)
        except Exception as exc:  # noqa: BLE001 - the index is a convenience; the run's files stand
            log.error("outputs/index.html was not rebuilt: %s", exc)
        result.browser_problems = check_in_browser(result, out_dir)
        atomic_write_json(out_dir / "summary.json", asdict(result))
        log.info("workbook finished in %.1f s", result.seconds)
        log.removeHandler(handler)
        handler.close()
    return result


def check_in_browser(result: WorkbookRun, out_dir: Path) -> list[str]:
    """Open each report in headless Chromium and save a screenshot; return the problems found.

    A report that does not load cleanly fails the workbook (non-zero exit), and so does a
    browser that cannot be started: an unchecked report is not a checked one.
    """
    reports = [Path(nb.report_html) for nb in result.notebooks if nb.report_html]
    if not reports:
        return []
    if not chromium_available():
        return ["reports not checked: Chromium is not installed (apt-get install chromium chromium-driver)"]
    problems = []
    try:
        for check in check_pages(reports, out_dir / "screenshots"):
            state = "ok" if check.ok else "; ".join(check.problems())
            log.info("browser check %s: %s (screenshot %s)", Path(check.path).name, state, check.screenshot)
            problems += [f"{Path(check.path).name}: {p}" for p in check.problems()]
    except Exception as exc:  # noqa: BLE001 - a browser problem must not lose the run's results
        problems.append(f"browser check failed: {type(exc).__name__}: {exc}")
    for problem in problems:
        log.error("browser check: %s", problem)
    return problems


def publish_latest(run_dir: Path, target_dir: Path, stem: str) -> None:
    """Copy this run's files for one notebook to ``outputs/<target>/`` (the latest results)."""
    for suffix in (".ipynb", ".html", ".report.html"):
        src = run_dir / f"{stem}{suffix}"
        if src.exists():
            atomic_copy(src, target_dir / f"{stem}{suffix}")
