"""Self-contained HTML reports: sections of text, tables and plotly figures in one offline page.

plotly.js is inlined once at the top of the page, so the report opens without a network connection.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from physlm.results import ProbeRow, read_results
from physlm.rundir import write_atomic

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; }
td.l, th.l { text-align: left; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .5em 1em; }
.ok { color: #1a7f37; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 0.85em; }
.figure { margin: 1em 0; }
"""


# Uncaught script errors are written onto <html data-js-errors>, so a headless browser's DOM dump shows them.
_ERROR_CAPTURE = (
    "window.addEventListener('error', function (e) { var r = document.documentElement;"
    " r.setAttribute('data-js-errors', (r.getAttribute('data-js-errors') || '') + e.message + ';'); });"
)


@dataclasses.dataclass
class ReportSection:
    """One section of a report: a title, HTML paragraphs/tables, and figures shown under them."""

    title: str
    html: str = ""
    figures: list[go.Figure] = dataclasses.field(default_factory=list)


def paragraph(text: str, css_class: str | None = None) -> str:
    """An escaped HTML paragraph."""
    cls = f' class="{css_class}"' if css_class else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def preformatted(text: str) -> str:
    """An escaped <pre> block (configs, logs)."""
    return f"<pre>{html.escape(text)}</pre>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, left: int = 1) -> str:
    """An HTML table from a list of dicts; the first ``left`` columns are left-aligned (labels)."""
    if not rows:
        return paragraph("(no rows)")
    columns = list(columns) if columns is not None else list(rows[0].keys())
    head = "".join(
        f'<th class="l">{html.escape(c)}</th>' if i < left else f"<th>{html.escape(c)}</th>"
        for i, c in enumerate(columns)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="l">{_cell(row.get(c, ""))}</td>' if i < left else f"<td>{_cell(row.get(c, ''))}</td>"
            for i, c in enumerate(columns)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_report(title: str, sections: Sequence[ReportSection], path: str | Path) -> Path:
    """Write one self-contained HTML page (plotly.js inlined once) and return its path."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>",
        f"<script>{_ERROR_CAPTURE}</script>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    figure_index = 0
    # plotly.js goes inline with the first figure only: the page works offline and stays one file.
    plotly_js_done = False
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(section.html)
        for fig in section.figures:
            div = pio.to_html(
                fig,
                include_plotlyjs=not plotly_js_done,
                full_html=False,
                div_id=f"figure-{figure_index}",
                config={"displaylogo": False, "responsive": True},
            )
            plotly_js_done = True
            parts.append(f"<div class='figure'>{div}</div>")
            figure_index += 1
    parts.append("</body></html>")
    out = Path(path)
    write_atomic(out, "\n".join(parts))
    return out


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable kaleido can drive, or None."""
    for env in ("BROWSER_PATH", "CHROME_PATH"):
        if os.environ.get(env) and Path(os.environ[env]).exists():
            return os.environ[env]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def write_pngs(figures: Mapping[str, go.Figure], out_dir: str | Path) -> tuple[list[Path], str | None]:
    """Write each figure as ``<name>.png`` with kaleido. Returns (written paths, reason if none were written).

    PNG export needs kaleido and a Chromium executable (Debian's ``chromium``, which ``make demo`` installs
    when it can); without them the HTML report is still complete and the reason is returned.
    """
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return [], "kaleido is not installed (pip install 'physlm[report]')"
    if find_chromium() is None:
        return [], "no Chromium executable found (apt-get install chromium)"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png" for name in figures]
    if not paths:
        return [], None
    try:
        # one browser session for every figure: starting Chromium per figure cost ~5 s each
        pio.write_images(list(figures.values()), paths, width=900, height=500)
    except Exception as exc:  # kaleido surfaces browser failures as many exception types
        return [p for p in paths if p.is_file()], f"PNG export stopped: {type(exc).__name__}: {exc}"
    return paths, None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file (e.g. metrics.jsonl); [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_result_rows(path: str | Path) -> list[ProbeRow]:
    """Rows of a probe_results.csv (:func:`physlm.results.read_results`); [] when the file is absent."""
    path = Path(path)
    return read_results(path) if path.is_file() else []


def write_report_pngs(figures: Mapping[str, go.Figure], run_dir: str | Path) -> list[Path]:
    """Write a report's figures to ``<run_dir>/figures/*.png``; when that is impossible, say why in
    ``figures/PNG_NOT_WRITTEN.txt`` (the HTML report is complete either way)."""
    out_dir = Path(run_dir) / "figures"
    written, reason = write_pngs(figures, out_dir)
    if reason:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "PNG_NOT_WRITTEN.txt").write_text(reason + "\n")
    return written
