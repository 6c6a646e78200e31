import json
from pathlib import Path

import nbformat
import pytest

from saraikit.report import workbook
from saraikit.core.errors import ConfigError
from saraikit.core.store import ResultsStore

ROOT = Path(__file__).resolve().parent.parent
import sys
sys.path.insert(0, str(ROOT / "tools"))
from nbgen import write  # noqa: E402


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks committed"
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged parameters"
        assert "quick = False" in tagged[0].source and "target = None" in tagged[0].source


def make_notebooks(folder: Path) -> None:
    folder.mkdir()
    write(folder / "01_ok.ipynb", [("params", "target = None\nrun_id = None\nquick = False\ngreeting = 'hi'"),
                                    ("code", "print(greeting, target, quick)")])
    write(folder / "02_fails.ipynb", [("params", "target = None\nrun_id = None\nquick = False"),
                                       ("code", "raise RuntimeError('this notebook is broken on purpose')")])
    write(folder / "03_after.ipynb", [("params", "target = None\nrun_id = None\nquick = False"),
                                       ("code", "print('still ran')")])


@pytest.fixture()
def scratch(tmp_path, monkeypatch):
    make_notebooks(tmp_path / "notebooks")
    monkeypatch.setenv("SARAIKIT_NOTEBOOKS", str(tmp_path / "notebooks"))
    monkeypatch.setenv("SARAIKIT_OUTPUTS", str(tmp_path / "outputs"))
    return tmp_path


def test_a_failing_notebook_does_not_stop_the_others(scratch):
    params = scratch / "p.yaml"
    params.write_text("01_ok: {greeting: hello}\n")
    result = workbook.run_workbook(target="Unit Box", quick=True, params_file=params, progress=False)
    statuses = {nb.name: nb.status for nb in result.notebooks}
    assert statuses == {"01_ok": "ok", "02_fails": "failed", "03_after": "ok"}
    failed = next(nb for nb in result.notebooks if nb.name == "02_fails")
    assert "broken on purpose" in failed.error
    out = scratch / "outputs" / "unit-box"
    for stem in ("01_ok", "02_fails", "03_after"):  # latest copies, with and without code
        assert (out / f"{stem}.ipynb").exists() and (out / f"{stem}.html").exists()
        assert (out / f"{stem}.report.html").exists()
    executed = nbformat.read(out / "01_ok.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "hello unit-box True" in printed  # parameters from the file and the workbook were injected
    assert "broken on purpose" in (out / "02_fails.html").read_text()
    summary = json.loads((Path(result.out_dir) / "summary.json").read_text())
    assert [nb["status"] for nb in summary["notebooks"]] == ["ok", "failed", "ok"]
    assert (Path(result.out_dir) / "workbook.log").read_text().count("running") == 3
    runs = ResultsStore(scratch / "outputs" / "results.sqlite").runs()
    assert list(runs["run_id"]) == [result.run_id] and runs.iloc[0]["target"] == "unit-box"


def test_report_html_hides_code(scratch):
    result = workbook.run_workbook(target="t", only=["01"], progress=False)
    nb = result.notebooks[0]
    with_code, without_code = Path(nb.html).read_text(), Path(nb.report_html).read_text()
    code_span = "<span class=\"n\">greeting</span>"  # the highlighted source of the code cell
    assert code_span in with_code and code_span not in without_code
    assert "hi t False" in with_code and "hi t False" in without_code


def test_unknown_notebook_and_unknown_params_are_rejected(scratch):
    with pytest.raises(ConfigError, match=r"unknown notebook\(s\) \['99_nope'\]"):
        workbook.select(["99_nope"])
    bad = scratch / "bad.yaml"
    bad.write_text("05_missing: {x: 1}\n")
    with pytest.raises(ConfigError, match="unknown notebook"):
        workbook.load_params("t", bad)


def test_papermill_infers_every_parameter():
    import ast

    import papermill

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assigned = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets}
        inferred = set(papermill.inspect_notebook(str(path)))
        assert inferred == assigned, f"{path.name}: papermill cannot parse {sorted(assigned - inferred)}"


@pytest.mark.integration
def test_a_report_that_fails_the_browser_check_fails_the_workbook(tmp_path, monkeypatch):
    from saraikit import cli
    from saraikit.report import browsercheck

    if not browsercheck.chromium_available():
        pytest.skip("Chromium missing: ./run.sh installs chromium and chromium-driver")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write(folder / "01_broken_image.ipynb", [
        ("params", "target = None\nrun_id = None\nquick = False"),
        ("code", "from IPython.display import HTML\nHTML('<p>' + 'A report with a broken figure. ' * 20 + '</p>'"
                 " '<img src=\"data:image/png;base64,AAAAAAAA\">')")])
    monkeypatch.setenv("SARAIKIT_NOTEBOOKS", str(folder))
    monkeypatch.setenv("SARAIKIT_OUTPUTS", str(tmp_path / "outputs"))
    result = workbook.run_workbook(target="t", progress=False)
    assert [nb.status for nb in result.notebooks] == ["ok"]  # the notebook ran, but its report is broken
    assert not result.ok and any("images did not decode" in p for p in result.browser_problems)
    assert "browser check:" in result.table()
    assert cli.main(["workbook", "--target", "t"]) == 1  # the command's exit code says so


def test_quick_sizes_come_from_one_file_and_the_target_file_wins(scratch, monkeypatch):
    from saraikit import notebook
    from saraikit.report.workbook import quick_values

    quick_file = scratch / "quick.yaml"
    quick_file.write_text("all: {greeting: quick-all}\n01_ok: {greeting: quick-01}\n")
    monkeypatch.setattr(workbook, "quick_file", lambda: quick_file)
    assert quick_values("01_ok") == {"greeting": "quick-01"} and quick_values("03_after") == {"greeting": "quick-all"}
    result = workbook.run_workbook(target="q", quick=True, only=["01"], progress=False)
    printed = "".join(o.get("text", "") for c in nbformat.read(result.notebooks[0].executed, as_version=4).cells
                      for o in c.get("outputs", []))
    assert "quick-01 q True" in printed  # the quick size reached the notebook
    params = scratch / "p.yaml"
    params.write_text("01_ok: {greeting: from-target-file}\n")
    result = workbook.run_workbook(target="q", quick=True, only=["01"], params_file=params, progress=False)
    printed = "".join(o.get("text", "") for c in nbformat.read(result.notebooks[0].executed, as_version=4).cells
                      for o in c.get("outputs", []))
    assert "from-target-file q True" in printed  # the target's own file wins over quick sizes
    with pytest.raises(ConfigError, match="unknown parameter\\(s\\) \\['greting'\\]"):
        quick_file.write_text("01_ok: {greting: typo}\n")
        notebook.quick_overrides("01_ok", {"greeting": "hi", "quick": True}, quick_file)


def test_a_run_whose_head_was_killed_resumes_under_its_id_keeping_the_notebooks_it_finished(tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import time

    folder = tmp_path / "notebooks"
    folder.mkdir()
    params = "target = None\nrun_id = None\nquick = False"
    write(folder / "01_first.ipynb", [("params", params), ("code", "print('first done')")])
    write(folder / "02_slow.ipynb", [("params", params), ("code", (
        "import os, pathlib, time\nmark = pathlib.Path(os.environ['SLOW_MARK'])\n"
        "if not mark.exists():\n    mark.write_text('started')\n    time.sleep(300)\nprint('slow done')"))])
    write(folder / "03_last.ipynb", [("params", params), ("code", "print('last done')")])
    env = {**os.environ, "SARAIKIT_NOTEBOOKS": str(folder), "SARAIKIT_OUTPUTS": str(tmp_path / "outputs"),
           "SLOW_MARK": str(tmp_path / "slow.mark")}
    for key in ("SARAIKIT_NOTEBOOKS", "SARAIKIT_OUTPUTS", "SLOW_MARK"):
        monkeypatch.setenv(key, env[key])
    head = subprocess.Popen([sys.executable, "-c", "from saraikit.report import workbook; "
                             "workbook.run_workbook(target='kill-box', quick=True, progress=False)"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (tmp_path / "slow.mark").exists():
        assert head.poll() is None and time.monotonic() < deadline, "the workbook never reached 02_slow"
        time.sleep(0.2)
    os.killpg(head.pid, signal.SIGKILL)  # the head and its kernel, mid-notebook
    head.wait()
    store = ResultsStore(tmp_path / "outputs" / "results.sqlite")
    killed_run = store.runs()["run_id"].iloc[-1]
    run_dir = tmp_path / "outputs" / "kill-box" / "runs" / killed_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [nb["name"] for nb in summary["notebooks"]] == ["01_first"]  # written after each notebook
    first_written = (run_dir / "01_first.ipynb").stat().st_mtime_ns

    resumed = workbook.run_workbook(target="kill-box", quick=True, resume="last", progress=False)
    assert resumed.run_id == killed_run and len(store.runs()) == 1
    assert [(nb.name, nb.status) for nb in resumed.notebooks] == [("01_first", "ok"), ("02_slow", "ok"), ("03_last", "ok")]
    assert (run_dir / "01_first.ipynb").stat().st_mtime_ns == first_written  # kept, not run again
    printed = "".join(o.get("text", "") for c in nbformat.read(run_dir / "02_slow.ipynb", as_version=4).cells
                      for o in c.get("outputs", []))
    assert "slow done" in printed
    with pytest.raises(ConfigError, match="cannot resume run 'nope'.*no quick run with that id for target 'kill-box'"):
        workbook.run_workbook(target="kill-box", quick=True, resume="nope", progress=False)
    with pytest.raises(ConfigError, match="no full run of target 'kill-box' to resume"):
        workbook.run_workbook(target="kill-box", quick=False, resume="last", progress=False)
