"""Open a report in headless Chromium and check that every plotly figure rendered without script errors."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
from pathlib import Path

from physlm.analysis.report_html import find_chromium

# The network is closed here: these flags stop Chromium's background connections and first-run work.
_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
)


@dataclasses.dataclass(frozen=True)
class BrowserCheck:
    """What a headless browser saw in a report."""

    figures: int
    """figure containers in the page"""
    rendered: int
    """figure containers that hold a rendered plotly SVG"""
    js_errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Every figure rendered and no script error was raised."""
        return self.figures > 0 and self.rendered == self.figures and not self.js_errors


def check_report_in_browser(path: str | Path, timeout: float = 120.0) -> BrowserCheck:
    """Load ``path`` in headless Chromium, dump the DOM after scripts ran, and count rendered figures."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium executable found; install Debian's `chromium` package")
    path = Path(path)
    expected = len(set(re.findall(r'id="(figure-\d+)"', path.read_text())))
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium, *_CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", path.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr[-2000:]}")
    dom = proc.stdout
    # plotly marks a graph div `js-plotly-plot` once it has drawn into it
    rendered = len(set(re.findall(r'<div id="(figure-\d+)" class="[^"]*js-plotly-plot', dom)))
    if "main-svg" not in dom:
        rendered = 0
    errors_attr = re.search(r'<html[^>]*data-js-errors="([^"]*)"', dom)
    errors = tuple(e for e in (errors_attr.group(1).split(";") if errors_attr else []) if e)
    return BrowserCheck(figures=expected, rendered=rendered, js_errors=errors)
