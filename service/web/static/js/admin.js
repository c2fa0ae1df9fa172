// Admin (#/admin/<section>): not built yet; the page says so rather than showing nothing.

import { h, show } from "./dom.js";

export function renderAdmin(main) {
  show(main, h("h1", {}, "Admin"), h("p", { class: "status" }, "This page is not built yet: the API has it at /docs."));
}
