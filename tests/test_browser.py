"""The HTML reports, opened in a real headless Chromium."""

from pathlib import Path

import pytest

from saraikit.report import browsercheck, workbook

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not browsercheck.chromium_available(),
                                 reason="Chromium missing: ./run.sh installs chromium and chromium-driver")]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, provisioned):
    """The real inventory and report notebooks, quick mode, into a scratch outputs folder."""
    outputs = tmp_path_factory.mktemp("outputs")
    mp = pytest.MonkeyPatch()
    mp.setenv("SARAIKIT_OUTPUTS", str(outputs))
    try:
        result = workbook.run_workbook(target="browser-test", quick=True, only=["00_inventory", "10_report"],
                                       progress=False)
    finally:
        mp.undo()
    return outputs, result


def test_every_report_loads_cleanly_with_images_and_a_screenshot(real_run):
    outputs, result = real_run
    assert [nb.status for nb in result.notebooks] == ["ok", "ok"], [nb.error for nb in result.notebooks]
    pages = [Path(nb.report_html) for nb in result.notebooks] + [Path(nb.html) for nb in result.notebooks]
    pages.append(outputs / "index.html")
    checks = browsercheck.check_pages(pages, outputs / "shots")
    for check in checks:
        assert check.ok, f"{check.path}: {check.problems()}"
        assert Path(check.screenshot).stat().st_size > 10_000
    inventory = next(c for c in checks if c.path.endswith("00_inventory.report.html"))
    assert inventory.images >= 2 and inventory.broken_images == 0  # op histogram and latency plot
    assert "silero-vad" in Path(inventory.path).read_text()
    # the workbook itself saved screenshots of its reports
    assert len(list((Path(result.out_dir) / "screenshots").glob("*.png"))) == 2


def test_a_broken_report_fails_the_check(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><img src='missing.png'><script>undefinedFunction()</script></body></html>")
    (check,) = browsercheck.check_pages([broken])
    assert not check.ok
    problems = " ".join(check.problems())
    assert "did not decode" in problems and "console error" in problems and "empty" in problems
