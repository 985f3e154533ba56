/* The leaderboard: per opponent, the players who have beaten it, most wins first. */
import { $, el } from "./dom.js";

/** Only players with at least one win: a leaderboard of wins. */
export function winners(players) {
  return (Array.isArray(players) ? players : []).filter((p) => Number(p.wins) > 0);
}

export function renderLeaderboard(data) {
  const box = $("leaderboard");
  if (data === null) {
    box.replaceChildren(el("p", "muted", "The leaderboard is not available right now."));
    return;
  }
  const list = Array.isArray(data.opponents) ? data.opponents : [];
  if (!list.length) {
    box.replaceChildren(el("p", "muted", "No games yet."));
    return;
  }
  box.replaceChildren(
    ...list.map((o) => {
      const name = o.name || o.opponent;
      const col = el("div", "lb-col");
      col.dataset.opponent = String(o.opponent);
      col.append(el("h3", "lb-title", `vs ${name}`));
      const players = winners(o.players).slice(0, 10);
      if (!players.length) {
        col.append(el("p", "muted small", `Nobody has beaten ${name} yet.`));
        return col;
      }
      const ol = el("ol", "lb-list");
      for (const p of players) {
        const wins = Number(p.wins);
        const games = Number(p.games) || wins;
        const li = el("li", "lb-item");
        li.append(
          el("span", "lb-name", p.player === null || p.player === undefined ? "anonymous" : p.player),
          el("span", "lb-stat", `${wins} ${wins === 1 ? "win" : "wins"}`),
          el("span", "lb-games muted small", `of ${games}`)
        );
        ol.append(li);
      }
      col.append(ol);
      return col;
    })
  );
}
