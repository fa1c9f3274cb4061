"""Open a local HTML file in headless Chromium over the DevTools protocol and report what
happened: console errors and uncaught exceptions, every network request, how many plotly
figures drew their SVG or canvas, and a full-page screenshot.

Only local files are opened; the DevTools port is bound to 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import websocket

# screenshots the browser tests save (CI keeps them)
ARTIFACTS = Path(os.environ.get("GRUTUNE_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-unsafe-swiftshader", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "--window-size=1280,1000"]
DRAWN = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(
  d => d.querySelector('svg.main-svg') !== null || d.querySelector('canvas') !== null)"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageReport:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    drawn: list[bool] = field(default_factory=list)  # per figure: SVG or canvas present


class _DevTools:
    def __init__(self, url: str):
        self.ws = websocket.create_connection(url, suppress_origin=True, timeout=30)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.ws.settimeout(max(deadline - time.monotonic(), 0.1))
            self.events.append(json.loads(self.ws.recv()))


def open_page(path: Path, screenshot: Path, timeout: float = 60.0) -> PageReport:
    """Load ``path``, wait until every figure drew (or ``timeout``), screenshot it."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    profile = Path(tempfile.mkdtemp(prefix="grutune-chromium-"))
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _port(profile, proc, timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        tools = _DevTools(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Network", "Page"):
            tools.call(f"{domain}.enable")
        tools.call("Page.navigate", url=path.resolve().as_uri())
        tools.wait_for("Page.loadEventFired", timeout)
        deadline = time.monotonic() + timeout
        while True:
            drawn = tools.call("Runtime.evaluate", expression=DRAWN,
                               returnByValue=True)["result"]["value"]
            if all(drawn) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        time.sleep(0.5)  # let late console messages arrive
        metrics = tools.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": metrics["width"],
                                "height": min(metrics["height"], 16000), "scale": 1})
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        tools.call("Runtime.evaluate", expression="1")  # flush queued events
        return _report(tools.events, drawn)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while not marker.exists() or not marker.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("chromium did not start its DevTools server")
        time.sleep(0.1)
    return int(marker.read_text().splitlines()[0])


def _report(events: list[dict], drawn: list[bool]) -> PageReport:
    report = PageReport(drawn=drawn)
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                          for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.errors.append(details.get("exception", {}).get("description")
                                 or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            report.errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            report.requests.append(params["request"]["url"])
    return report
