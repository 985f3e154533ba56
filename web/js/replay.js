/* The replay page: one game from GET /api/games/{id}, round by round, with what the bot expected
 * and why (the game page's insight panel). Keys: left/right arrows step, Home/End jump.
 */
import { MOVES, MOVE_LABEL, fmt } from "./format.js";
import { renderInsight } from "./render/insight.js";
import { $, el } from "./render/dom.js";
import { gameIdFromPath, replayState, roundLine, summaryLine } from "./replay-model.js";

const nameOf = (id) => (id ? id.charAt(0).toUpperCase() + id.slice(1) : "Bot");

function historyRow(r, shown, go) {
  const row = el("tr", r.round === shown ? "is-selected" : "");
  const cell = el("td");
  const button = el("button", "round-toggle", String(r.round));
  button.type = "button";
  button.setAttribute("aria-pressed", String(r.round === shown));
  button.setAttribute("aria-label", `Show round ${r.round}`);
  button.addEventListener("click", () => go(r.round));
  cell.append(button);
  row.append(
    cell,
    el("td", "values", MOVES.map((m) => fmt(r.values[m])).join(" ")),
    el("td", "", MOVE_LABEL[r.player_move]),
    el("td", "", MOVE_LABEL[r.bot_move]),
    el("td", `outcome-${r.outcome}`, { win: "Player", lose: "Bot", draw: "Draw" }[r.outcome]),
    el("td", "", `${fmt(r.score.player)} : ${fmt(r.score.bot)}`)
  );
  return row;
}

function show(game, round) {
  const name = nameOf(game.opponent);
  const total = game.rounds.length;
  const r = game.rounds[round - 1];
  $("round-label").textContent = `Round ${round} of ${total}`;
  $("round-input").value = String(round);
  $("first").disabled = $("prev").disabled = round <= 1;
  $("next").disabled = $("last").disabled = round >= total;
  $("announcer").textContent = roundLine(r, name);
  const values = new Map(game.rounds.map((x) => [x.round, x.values]));
  renderInsight(replayState(game, round), (_, n) => values.get(n));
  const go = (n) => show(game, n);
  $("history-body").replaceChildren(...game.rounds.map((x) => historyRow(x, round, go)).reverse());
}

function fail(text) {
  $("replay-error").textContent = text;
  $("replay-error").hidden = false;
}

async function main() {
  const id = gameIdFromPath(location.pathname);
  let response;
  try {
    response = await fetch(`/api/games/${encodeURIComponent(id)}`);
  } catch {
    fail("The server cannot be reached. Try again shortly.");
    return;
  }
  if (response.status === 404) {
    fail("There is no such game. Check the link.");
    return;
  }
  if (!response.ok) {
    fail("The game cannot be shown right now. Try again shortly.");
    return;
  }
  const game = await response.json();
  const name = nameOf(game.opponent);
  document.title = `Replay: ${name} · RPS Quest`;
  $("replay-title").textContent = `Replay: a game against ${name}`;
  $("replay-summary").textContent = summaryLine(game, name);
  if (!game.rounds.length) {
    fail("No round of this game has been played yet.");
    return;
  }
  const total = game.rounds.length;
  let round = total;
  const go = (n) => {
    round = Math.max(1, Math.min(total, n));
    show(game, round);
  };
  $("round-input").max = String(total);
  $("first").addEventListener("click", () => go(1));
  $("prev").addEventListener("click", () => go(round - 1));
  $("next").addEventListener("click", () => go(round + 1));
  $("last").addEventListener("click", () => go(total));
  $("round-input").addEventListener("input", (e) => go(Number(e.target.value)));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.altKey || e.ctrlKey || e.metaKey) {
      return;
    }
    const to = { ArrowLeft: round - 1, ArrowRight: round + 1, Home: 1, End: total }[e.key];
    if (to !== undefined) {
      e.preventDefault();
      go(to);
    }
  });
  $("copy-link").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      $("copy-link").textContent = "Link copied";
    } catch {
      $("copy-link").textContent = "Copy the address bar";
    }
  });
  $("replay-body").hidden = false;
  go(total);
}

main();
