"""The analysts' report renders in headless Chromium, shows its plots and makes no network request."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from glave_tasks.report.build import build_report
from tests.stages.test_validate import RUN, validated  # noqa: F401 - module fixture: a validated seeded run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _cdp_page(port: int):  # noqa: ANN202
    import websocket

    for _ in range(50):
        try:
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2).read())
            page = next(t for t in targets if t["type"] == "page")
            return websocket.create_connection(page["webSocketDebuggerUrl"], timeout=20)
        except (OSError, StopIteration):
            time.sleep(0.2)
    raise RuntimeError("chromium DevTools endpoint did not come up")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/system-deps.sh installs it)")
def test_report_renders_offline_in_headless_chromium(validated, tmp_path: Path) -> None:  # noqa: F811
    store, config, _ = validated
    html = Path(build_report(store, config, RUN)["html"])
    profile = tmp_path / "profile"
    proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.2)
        ws = _cdp_page(int(port_file.read_text().split()[0]))
        ids = iter(range(1, 10_000))
        events: list[dict] = []

        def call(method: str, **params):  # noqa: ANN202
            mid = next(ids)
            ws.send(json.dumps({"id": mid, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv())
                if msg.get("id") == mid:
                    return msg.get("result", {})
                events.append(msg)

        call("Network.enable")
        call("Page.enable")
        call("Page.navigate", url=html.as_uri())
        deadline = time.time() + 20
        while time.time() < deadline and not any(e.get("method") == "Page.loadEventFired" for e in events):
            events.append(json.loads(ws.recv()))
        result = call("Runtime.evaluate", expression=(
            "JSON.stringify({svgs: document.querySelectorAll('.figure svg').length, title: document.title,"
            " rows: document.querySelectorAll('table tr').length, width: document.body.scrollWidth})"), returnByValue=True)
        page = json.loads(result["result"]["value"])
        ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    requested = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    assert page["title"] == f"glave report {RUN}"
    assert page["svgs"] == 4, "caption lengths, QA per dimension, failures, trends"
    assert page["rows"] > 10 and page["width"] > 0
    assert requested and all(u.startswith(("file://", "data:")) for u in requested), requested
