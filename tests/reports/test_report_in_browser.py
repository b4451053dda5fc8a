"""The daily HTML report as its reader sees it: a day of the project's synthetic data
(`basketflow generate`, `backfill --from`, `report`, all through the real command)
rendered by a real headless Chromium into a 1280 px screenshot, which must show a page
(not a blank image), with no message on the browser's console.

Skips, saying why, where no Chromium is installed (`.ci/run` installs Debian's
``chromium`` when apt is there). ``BASKETFLOW_REPORT_SCREENSHOT=PATH`` also saves the
screenshot at PATH (how ``docs/daily-report.png`` is made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from basketflow.config import ENV_DATA_DIR, ENV_KAFKA, ENV_REDIS

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WIDTH = 1280
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


def _browser() -> str:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium binary on PATH (install Debian's `chromium`; .ci/run does "
                "when apt is available)")


def _basketflow(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_KAFKA, ENV_REDIS)}
    env[ENV_DATA_DIR] = str(data)
    done = subprocess.run([sys.executable, "-m", "basketflow.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_a_days_report_renders_in_a_headless_browser(tmp_path: Path) -> None:
    from basketflow.app.demo import busiest
    browser = _browser()
    data, sample = tmp_path / "data", tmp_path / "sample.csv"
    _basketflow(data, "generate", "--rows", "20000", "--seed", "7", "--out", str(sample))
    _basketflow(data, "backfill", "--from", str(sample), "--processes", "1")
    _, day = busiest(sample, 1)
    _basketflow(data, "report", "--date", day.isoformat(), "--format", "html",
                "--out", str(tmp_path / "reports"))
    page = tmp_path / "reports" / day.isoformat() / "report.html"
    text = page.read_text(encoding="utf-8")
    assert str(tmp_path) not in text  # no filesystem path for the reader
    for image in re.findall(r'<img src="([^"]+)"', text):
        assert (page.parent / image).is_file(), image

    shot = tmp_path / "report.png"
    done = subprocess.run([browser, *HEADLESS, f"--screenshot={shot}",
                           f"--window-size={WIDTH},2000", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    from PIL import Image
    with Image.open(shot) as image:
        assert image.width == WIDTH
        pixels = image.convert("L").resize((WIDTH // 8, image.height // 8))
        inked = sum(1 for p in pixels.getdata() if p < 200)
        assert inked > pixels.width * pixels.height * 0.02, "the screenshot is (nearly) blank"
        assert len(image.convert("RGB").getcolors(1 << 20) or ()) > 50  # text, colours, charts
    if target := os.environ.get("BASKETFLOW_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, target)
