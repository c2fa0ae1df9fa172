// The API's catalogues (GET /v1/event-kinds, GET /v1/vehicle-classes), read once per page load and shared: a kind's
// label and unit, a class's thresholds come from the server's one declaration, never from a list kept here.

import { api } from "./api.js";

let kinds = null;
let classes = null;

export function eventKinds() {
  kinds ??= api("/v1/event-kinds").catch((error) => {
    kinds = null; // a failed read is asked again next time, not remembered
    throw error;
  });
  return kinds;
}

export function vehicleClasses() {
  classes ??= api("/v1/vehicle-classes").catch((error) => {
    classes = null;
    throw error;
  });
  return classes;
}

export function labelOf(allKinds, key) {
  return allKinds.find((k) => k.key === key)?.label ?? key;
}
