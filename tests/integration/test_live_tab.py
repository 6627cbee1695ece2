"""The live dashboard in Locust's web UI: a real `locust -f` with its web UI, a test started from the form
with a variant other than the default, and the tab's data endpoint serving that variant's series from
the embedded Prometheus."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from harness.modules import dashboard, get_module
from harness.settings import get_settings

pytestmark = pytest.mark.integration
SPEC = get_module("scaling_reads")
VARIANT = SPEC.variant_names[1]  # not the default: the form's choice must reach the tab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(1)
    pytest.fail(f"no {what} within {timeout_s} s")


@pytest.fixture(scope="module")
def web_ui(stack, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("locust") / "locust.log"
    with log.open("w") as out:
        locust = subprocess.Popen([sys.executable, "-m", "locust", "-f", f"locustfiles/{SPEC.id}.py", "--web-host",
                                   "127.0.0.1", "--web-port", str(port)], cwd=get_settings().project_dir,
                                  stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"

    def answering():
        try:
            return requests.get(url, timeout=2).status_code == 200 or None
        except requests.RequestException:
            return None if locust.poll() is None else pytest.fail(Path(log).read_text()[-2000:])

    try:
        wait_for(answering, 60, "web UI")
        since = time.time()
        started = requests.post(f"{url}/swarm", data={"user_count": 2, "spawn_rate": 2, "variant": VARIANT}, timeout=10)
        assert started.status_code == 200 and started.json()["success"], started.text
        yield url, since
        requests.get(f"{url}/stop", timeout=30)
    finally:
        locust.terminate()
        locust.wait(timeout=60)


def test_the_data_endpoint_serves_the_running_variants_series(web_ui):
    url, since = web_ui

    def running_series():
        body = requests.get(f"{url}/harness/dashboard/series", params={"window": 60}, timeout=30).json()
        assert body["running"] == VARIANT
        # samples of this test only (an earlier test may have loaded the same variant a minute ago)
        mine = {p["title"] for p in body["panels"] for t in p["targets"] for s in t["series"]
                if s["labels"].get("variant") == VARIANT and any(t > since and v > 0 for t, v in s["values"])}
        return mine if {"Locust users", "Load-side throughput (req/s)"} <= mine else None

    panels = wait_for(running_series, 60, f"series of {VARIANT} since the test started")
    assert len(panels) >= 5, panels


def test_the_tab_lists_every_panel_and_the_page_draws_them(web_ui):
    web_ui, _ = web_ui
    stats = requests.get(f"{web_ui}/stats/requests", timeout=30).json()
    [tab] = stats["extended_stats"]
    titles = {row["panel"] for row in tab["data"]}
    panels = {p["title"] for p in json.loads(dashboard(SPEC).read_text())["panels"] if p["type"] != "row"}
    assert panels <= titles
    page = requests.get(f"{web_ui}/harness/dashboard", timeout=10)
    assert page.status_code == 200 and "/harness/dashboard/series" in page.text and "/harness/plotly.js" in page.text
    assert requests.get(f"{web_ui}/harness/plotly.js", timeout=30).headers["content-type"].startswith(
        "application/javascript")


@pytest.mark.parametrize("window", ["abc", "5", "99999"])
def test_a_bad_window_is_a_400_that_says_what_is_expected(web_ui, window):
    web_ui, _ = web_ui
    response = requests.get(f"{web_ui}/harness/dashboard/series", params={"window": window}, timeout=10)
    assert response.status_code == 400 and "window must be whole seconds" in response.json()["error"]
