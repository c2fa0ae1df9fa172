"""What browser tests check on a page, written once: a chart's series drawn on its canvas (pixels of the series'
colour, and how many colours the canvas holds: a blank or one-colour frame is no chart), and axe-core's serious or
critical accessibility violations."""

from __future__ import annotations

from typing import Any

from tests.browser.inprocess import AXE

# [canvas selector, "#rrggbb"] -> {series: pixels within a small distance of the colour, distinct: colours sampled}
_CANVAS_PIXELS = """([selector, hex]) => {
    const canvas = document.querySelector(selector);
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const want = hex.match(/[0-9a-f]{2}/gi).map((x) => parseInt(x, 16));
    let series = 0;
    const distinct = new Set();
    for (let i = 0; i < pixels.length; i += 4) {
        const d = Math.abs(pixels[i] - want[0]) + Math.abs(pixels[i + 1] - want[1]) + Math.abs(pixels[i + 2] - want[2]);
        if (pixels[i + 3] > 200 && d < 60) series += 1;
        if (i % 64 === 0) distinct.add(pixels.slice(i, i + 4).join(","));
    }
    return { series, distinct: distinct.size, width: canvas.width, height: canvas.height };
}"""


def canvas_pixels(page: Any, selector: str, colour: str) -> dict[str, int]:
    """How many of the canvas's pixels are the series' colour (antialiased within a tolerance), and its colours."""
    return dict(page.evaluate(_CANVAS_PIXELS, [selector, colour]))


def serious_violations(page: Any, *, within: str | None = None, axe_url: str | None = None) -> list[str]:
    """axe-core's serious or critical violations on the page (or the part `within` selects). axe is injected from
    node_modules (the page must be opened with bypass_csp: its CSP refuses the script, rightly), or from `axe_url` when
    the test serves it from the page's own origin."""
    if page.evaluate("() => typeof axe") == "undefined":
        page.add_script_tag(url=axe_url) if axe_url else page.add_script_tag(path=str(AXE))
    found = page.evaluate("async (within) => (await axe.run(within ?? document)).violations", within)
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
