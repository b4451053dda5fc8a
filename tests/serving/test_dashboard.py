"""The dashboard at `/` of a real `basketflow serve`, in a real headless Chromium driven
by Selenium (Debian's `chromium` and `chromium-driver`; `.ci/run` installs both when apt
is there, and the test skips, saying why, without them): the page loads with a silent
console, its stream charts are drawn, and a customer lookup shows the customer's stored
values and draws their history.

``BASKETFLOW_DASHBOARD_SCREENSHOT=PATH`` also saves a 1280 px screenshot of the lookup at
PATH (how ``docs/dashboard.png`` is made).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from basketflow.config import Settings
from basketflow.features.entity_features import CustomerFolder
from basketflow.sinks.offline_store import FeatureLog
from tests.serving.conftest import CUSTOMER, LINES, Server, events, write_customer

CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium under Selenium, its console kept."""
    webdriver = pytest.importorskip("selenium.webdriver")
    browser_binary = shutil.which("chromium")
    if browser_binary is None or not Path(CHROMEDRIVER).exists():
        pytest.skip("no chromium and chromium-driver (Debian packages; .ci/run installs "
                    "them when apt is available)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser_binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600",
                "--disable-background-networking", "--disable-component-update"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.1)
    raise AssertionError("the page did not get there in time")


def drawn_pixels(driver: Any, selector: str) -> int:
    """Non-transparent pixels of the first canvas under ``selector``."""
    return int(driver.execute_script(
        "const c = document.querySelector(arguments[0] + ' canvas');"
        "if (!c) return 0;"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;",
        selector))


def test_the_dashboard_loads_draws_and_looks_up(settings: Settings, server: Server,
                                                browser: Any) -> None:
    stored = write_customer(settings, CUSTOMER, LINES)
    update = CustomerFolder().fold(CUSTOMER, events(LINES), 3600)
    assert update is not None
    FeatureLog(settings.offline_dir, "customer").append(
        [row for row in update.rows if row[0] == "customer"])

    browser.get(server.url + "/")
    wait_for(lambda: len(browser.find_elements("css selector", "#stream .uplot")) == 3)
    assert "Feature registry" in browser.page_source
    assert all(drawn_pixels(browser, f"#{chart}") for chart in
               ("chart-rate", "chart-freshness", "chart-lag"))

    field = browser.find_element("id", "customer")
    field.send_keys(CUSTOMER)
    browser.find_element("css selector", "#lookup button").click()
    cell = wait_for(lambda: browser.find_elements(
        "css selector", 'td[data-feature="customer:spend_30d"]'))
    assert cell[0].text == str(stored["customer"][1]["spend_30d"])
    assert browser.find_element("css selector", 'td[data-feature="basket:lines"]').text == \
        str(stored["basket"][1]["lines"])
    wait_for(lambda: drawn_pixels(browser, "#chart-history") > 0)

    shot = os.environ.get("BASKETFLOW_DASHBOARD_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)
    console = browser.get_log("browser")
    assert not [entry for entry in console if entry["level"] in ("SEVERE", "WARNING")], \
        json.dumps(console, indent=1)


def test_the_data_route_gives_the_stream(settings: Settings, server: Server) -> None:
    write_customer(settings, CUSTOMER, LINES)  # a progress hash with a clock
    def sampled_after_the_write() -> dict[str, Any] | None:
        """The series once a sample saw the clock (the first may come before the write)."""
        data = server.client.get("/dashboard/data").json()
        fresh = data["freshness_seconds"]
        return data if fresh and fresh[-1] is not None else None

    got = wait_for(sampled_after_the_write)
    assert set(got) == {"at", "events_per_second", "freshness_seconds", "lag"}
    assert got["freshness_seconds"][-1] == pytest.approx(got["at"][-1] - 1291200000, abs=1)
    missing = server.client.get("/?customer=nobody-here")
    assert missing.status_code == 200 and "No live values for customer nobody-here" in \
        missing.text
