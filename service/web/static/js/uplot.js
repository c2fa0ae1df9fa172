// uPlot, loaded on first use by the pages that chart (the login and fleet pages load none of it): its stylesheet
// once, then the vendored ES module (fleetsense stack prepare copies both from npm).

let uPlotModule = null;

export async function loadUPlot() {
  if (uPlotModule === null) {
    const href = new URL("../vendor/uPlot.min.css", import.meta.url).href;
    if (![...document.querySelectorAll("link[rel=stylesheet]")].some((l) => l.href === href)) {
      document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href }));
    }
    uPlotModule = (await import("../vendor/uPlot.esm.js")).default;
  }
  return uPlotModule;
}
