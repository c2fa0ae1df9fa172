// Drivers (#/drivers, #/drivers/<id>): not built yet; the page says so rather than showing nothing.

import { h, show } from "./dom.js";

export function renderDrivers(main) {
  show(main, h("h1", {}, "Drivers"), h("p", { class: "status" }, "This page is not built yet: the API has it at /docs."));
}
