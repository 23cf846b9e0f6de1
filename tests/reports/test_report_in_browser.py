"""The CFG report opens in a real (headless) Chromium: every figure renders and no script error is raised."""

import shutil

import pytest

from physlm.analysis.browser_check import check_report_in_browser
from physlm.analysis.report_html import find_chromium
from physlm.experiments.zoo import default_zoo_entry, zoo_path

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not installed (make installs it)")


def test_cfg_report_renders_every_figure(tmp_path):
    from physlm.analysis.report_cfg import build_cfg_report

    if default_zoo_entry() is None:
        pytest.skip("no zoo entry to build a report from")
    run = tmp_path / "run"
    shutil.copytree(zoo_path(default_zoo_entry()), run)
    report = build_cfg_report(run, png=False)
    check = check_report_in_browser(report)
    assert check.figures >= 3  # loss curve and at least two probe figures
    assert check.rendered == check.figures, check
    assert check.js_errors == (), check


def test_a_script_error_is_reported(tmp_path):
    import plotly.graph_objects as go

    from physlm.analysis.report_html import ReportSection, render_report

    path = render_report("t", [ReportSection("s", "", [go.Figure(go.Bar(x=[1], y=[2]))])], tmp_path / "r.html")
    path.write_text(path.read_text().replace("</body>", "<script>no_such_function();</script></body>"))
    check = check_report_in_browser(path)
    assert check.rendered == 1 and not check.ok
    assert any("no_such_function" in e for e in check.js_errors)
