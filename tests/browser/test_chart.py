"""uPlot under the dashboard's Content-Security-Policy ('self' only, no inline styles): the event page's chart module
(js/trace_chart.js) draws a +-10 s trace at 100 Hz, and the canvas holds the series' pixels, not just a canvas.
Needs playwright and /usr/bin/chromium (tests/browser/conftest.py), and uPlot vendored (fleetsense stack prepare)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.inprocess import app_with, draw_synthetic_trace, serving, snapshot_of

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")


def test_the_trace_chart_draws_its_series_under_the_pages_content_security_policy(browser: Any) -> None:
    with serving(app_with({}, snapshot_of(0))) as base:
        page = browser.new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(base + "/app/", timeout=10_000)
        drawn = page.evaluate(draw_synthetic_trace(2001))
        print(f"trace chart: {drawn['drawMs']:.1f} ms to the first frame, {drawn['series']} series pixels")
        assert refused == [], refused
        assert drawn["series"] > 300, drawn  # the longitudinal line's pixels, antialiased within a tolerance
        assert drawn["distinct"] > 3, drawn  # not one flat colour
        assert "longitudinal (forward +)" in drawn["title"]  # the legend (the axes' labels are on the canvas)
        assert drawn["drawMs"] < 2_000, drawn  # the bench measures it properly (target < 100 ms); this is a bound
        page.close()
