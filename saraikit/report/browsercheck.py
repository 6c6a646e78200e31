"""Open HTML reports in a real headless Chromium: console errors, images, a screenshot.

Used by the tests (a broken or empty report fails) and by the workbook, which
saves a screenshot of each report next to it. Chromium and its driver come
from Debian (``chromium``, ``chromium-driver``); the flags are the ones this
machine needs to start Chromium with no network and as root.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from saraikit.core.errors import SaraikitError

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")


@dataclass
class PageCheck:
    path: str
    title: str
    text_chars: int
    images: int
    broken_images: int
    console_errors: list[str] = field(default_factory=list)
    screenshot: str | None = None

    @property
    def ok(self) -> bool:
        return not self.console_errors and self.broken_images == 0 and self.text_chars > 200

    def problems(self) -> list[str]:
        found = [f"console error: {e}" for e in self.console_errors]
        if self.broken_images:
            found.append(f"{self.broken_images} of {self.images} images did not decode")
        if self.text_chars <= 200:
            found.append(f"the page is (nearly) empty: {self.text_chars} characters of text")
        return found


def chromium_available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def open_browser(width: int = 1280, height: int = 1600):
    if not chromium_available():
        raise SaraikitError("Chromium is not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def check_page(driver, path: Path, screenshot: Path | None = None) -> PageCheck:
    path = Path(path).resolve()
    driver.get(path.as_uri())
    images = driver.execute_script(
        "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    text = driver.execute_script("return document.body ? document.body.innerText : ''") or ""
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    saved = None
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight") or 1600
        driver.set_window_size(1280, min(int(height), 12000))
        driver.save_screenshot(str(screenshot))
        saved = str(screenshot)
    return PageCheck(str(path), driver.title, len(text), len(images), sum(1 for ok in images if not ok), errors, saved)


def check_pages(paths: list[Path], screenshot_dir: Path | None = None) -> list[PageCheck]:
    driver = open_browser()
    try:
        return [check_page(driver, p, screenshot_dir / f"{Path(p).name}.png" if screenshot_dir else None)
                for p in paths]
    finally:
        driver.quit()
