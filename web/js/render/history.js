/* The rounds table, newest first. Each row's round number is a toggle button
 * (aria-pressed) that shows that round in the insight panel; rows are added, never
 * rebuilt, so the focus stays on the button the player pressed.
 */
import { MOVE_LABEL, MOVES, fmt } from "../format.js";
import { ranks } from "./board.js";
import { $, el, opponentName } from "./dom.js";
import { outcomeText } from "./result.js";

const FAIR = {
  ok: ["✓", "Fair play verified: SHA-256 of the revealed move and nonce matches the commitment sent before you moved."],
  bad: ["⚠", "Commit mismatch: the revealed move and nonce do not match the commitment."],
  unknown: ["?", "Unverified: this browser never saw the commitment for this round."],
  pending: ["…", "Checking…"]
};

function fairMark(status) {
  const [text, title] = FAIR[status];
  const mark = el("span", `fair fair-${status}`, text);
  mark.title = title;
  mark.setAttribute("role", "img");
  mark.setAttribute("aria-label", title);
  return mark;
}

function moveCell(move) {
  const td = el("td", "c-move");
  const label = MOVE_LABEL[move] || String(move);
  td.title = label;
  const icon = document.querySelector(`#moves button[data-move="${move}"] .move-icon`);
  if (icon) {
    const copy = icon.cloneNode(true);
    copy.setAttribute("class", "mini-icon");
    td.append(copy);
  }
  td.append(el("span", "mv-word", label));
  return td;
}

function valuesCell(pending) {
  const cell = el("td", "c-values", "…");
  pending.then((values) => {
    const rk = ranks(values);
    cell.replaceChildren(
      ...MOVES.flatMap((m, i) => {
        const span = el("span", `v v-${rk[m]}`, fmt(values[m]));
        span.title = `${MOVE_LABEL[m]} ${fmt(values[m])}`;
        return i ? [" ", span] : [span];
      })
    );
  });
  return cell;
}

let shownGame = null;
let badRounds = [];

function row(state, r, deps) {
  const game = state.game;
  const name = opponentName(state, game.opponent);
  const tr = el("tr", `row-${String(r.outcome)}`);
  tr.dataset.round = String(r.round);
  const head = el("td", "c-round");
  const toggle = el("button", "round-toggle", r.round);
  toggle.type = "button";
  toggle.setAttribute("aria-label", `Round ${r.round}: show what ${name} was thinking`);
  toggle.addEventListener("click", (e) => {
    e.stopPropagation();
    deps.select(r.round);
  });
  head.append(toggle);
  const outcome = el("td", "c-outcome", r.outcome === "win" ? "Win" : r.outcome === "lose" ? "Loss" : "Draw");
  outcome.title = outcomeText(r.outcome, name);
  const pts = r.points || {};
  const fair = el("td", "c-fair");
  fair.append(fairMark("pending"));
  tr.append(head, valuesCell(deps.values(game.game_id, r.round)), moveCell(r.player_move), moveCell(r.bot_move),
    outcome, el("td", "c-points", `${fmt(pts.player)} : ${fmt(pts.bot)}`), fair);
  tr.addEventListener("click", () => deps.select(r.round)); // the whole row, for the mouse
  const gameId = game.game_id;
  deps.verify(gameId, r).then((status) => {
    fair.replaceChildren(fairMark(status));
    if (status === "bad" && shownGame === gameId) {
      badRounds = [...badRounds, r.round].sort((a, b) => a - b);
      const alert = $("fair-alert");
      alert.textContent = `⚠ Commit mismatch in round${badRounds.length > 1 ? "s" : ""} ${badRounds.join(", ")}: the move the server revealed does not match the commitment it sent before you moved.`;
      alert.hidden = false;
    }
  });
  return tr;
}

export function renderHistory(state, deps) {
  const game = state.game;
  const body = $("history-body");
  if (!game) {
    shownGame = null;
    return;
  }
  const rows = body.querySelectorAll("tr[data-round]");
  if (shownGame !== game.game_id || rows.length > game.history.length) {
    shownGame = game.game_id;
    badRounds = [];
    $("fair-alert").hidden = true;
    body.replaceChildren();
  }
  for (const r of game.history.slice(body.children.length)) {
    body.prepend(row(state, r, deps));
  }
  const selected = state.selected;
  for (const tr of body.querySelectorAll("tr[data-round]")) {
    const on = tr.dataset.round === String(selected);
    tr.classList.toggle("is-selected", on);
    tr.querySelector(".round-toggle").setAttribute("aria-pressed", String(on));
  }
  $("history-wrap").hidden = game.history.length === 0;
}
