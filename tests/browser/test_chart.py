"""uPlot under the dashboard's Content-Security-Policy ('self' only, no inline styles): the event page's chart module
(js/trace_chart.js) draws a +-10 s trace at 100 Hz, and the canvas holds the series' pixels, not just a canvas.
Needs playwright and /usr/bin/chromium (tests/browser/conftest.py), and uPlot vendored (fleetsense stack prepare)."""

from __future__ import annotations

from typing import Any

import pytest
from fleetsense.service.web_assets import missing_vendored

from tests.browser.inprocess import app_with, serving, snapshot_of

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
if missing_vendored():
    pytest.skip("needs uPlot vendored: run `fleetsense stack prepare`", allow_module_level=True)

# A harsh brake's trace as GET /v1/events/{key}/trace answers it: 2,001 samples, the dip from 0 to 0.6 s.
DRAW_SYNTHETIC_TRACE = """async () => {
    const { drawTrace, TRACE_COLOURS } = await import("/app/js/trace_chart.js");
    const t_ms = Array.from({ length: 2001 }, (_, i) => -10000 + i * 10);
    const dip = (t) => (t >= 0 && t <= 600 ? -0.62 * Math.sin((Math.PI * t) / 600) : 0);
    const trace = {
        event: { key: "van-1/0/harsh_brake", kind: "harsh_brake", start_ms: 0, end_ms: 600, duration_ms: 600,
                 peak: 0.62, peak_unit: "g", vehicle_id: "van-1" },
        threshold_g: 0.45,
        t_ms,
        longitudinal_g: t_ms.map((t) => dip(t) + 0.01 * Math.sin(t / 37)),
        lateral_g: t_ms.map((t) => 0.03 * Math.sin(t / 211)),
        vertical_g: t_ms.map((t) => 0.05 * Math.sin(t / 13)),
    };
    const box = document.createElement("div");
    document.body.append(box);
    const { plot, drawMs } = await drawTrace(box, trace, { width: 900, height: 360 });
    const canvas = box.querySelector("canvas");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const want = TRACE_COLOURS.longitudinal.match(/[0-9a-f]{2}/gi).map((hex) => parseInt(hex, 16));
    let series = 0, distinct = new Set();
    for (let i = 0; i < pixels.length; i += 4) {
        const d = Math.abs(pixels[i] - want[0]) + Math.abs(pixels[i + 1] - want[1]) + Math.abs(pixels[i + 2] - want[2]);
        if (pixels[i + 3] > 200 && d < 60) series += 1;
        if (i % 64 === 0) distinct.add(pixels.slice(i, i + 4).join(","));
    }
    return { drawMs, series, distinct: distinct.size, width: canvas.width, title: plot.root.innerText };
}"""


def test_the_trace_chart_draws_its_series_under_the_pages_content_security_policy(browser: Any) -> None:
    with serving(app_with({}, snapshot_of(0))) as base:
        page = browser.new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(base + "/app/", timeout=10_000)
        drawn = page.evaluate(DRAW_SYNTHETIC_TRACE)
        print(f"trace chart: {drawn['drawMs']:.1f} ms to the first frame, {drawn['series']} series pixels")
        assert refused == [], refused
        assert drawn["series"] > 300, drawn  # the longitudinal line's pixels, antialiased within a tolerance
        assert drawn["distinct"] > 3, drawn  # not one flat colour
        assert "longitudinal (forward +)" in drawn["title"]  # the legend (the axes' labels are on the canvas)
        assert drawn["drawMs"] < 2_000, drawn  # the bench measures it properly (target < 100 ms); this is a bound
        page.close()
