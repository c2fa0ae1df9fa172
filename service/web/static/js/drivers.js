// Drivers (#/drivers): the leaderboard when the params are empty or only a query ("?period=week&at=..."), else a
// driver's scorecard (#/drivers/<id>?period=...). Driver ids are letters, digits, - and _, so "?" cannot be one.

import { renderBoard } from "./driver_board.js";
import { renderDriverCard } from "./driver_card.js";

export function renderDrivers(main, { params, onUnauthorized }) {
  const cut = params.indexOf("?");
  const driverId = cut < 0 ? params : params.slice(0, cut);
  const query = cut < 0 ? "" : params.slice(cut + 1);
  if (driverId === "") return renderBoard(main, { query, onUnauthorized });
  return renderDriverCard(main, { driverId, query, onUnauthorized });
}
