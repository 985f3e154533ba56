/* The board: heading, score bars, round label and the three move buttons.
 * The buttons stay focusable while a move is in flight (aria-disabled, not disabled), so
 * the focus stays on the button the player pressed.
 */
import { MOVES, MOVE_LABEL, fmt, target } from "../format.js";
import { memoryText } from "../memory.js";
import { canMove } from "../session.js";
import { $, opponentName } from "./dom.js";

/** "high", "middle" or "low" for each move of a round's values. */
export function ranks(values) {
  const sorted = MOVES.slice().sort((a, b) => values[b] - values[a]);
  return { [sorted[0]]: "high", [sorted[1]]: "middle", [sorted[2]]: "low" };
}

function renderScore(game, name) {
  const goal = game.target || 10;
  for (const side of ["player", "bot"]) {
    const v = Number(game.score[side]) || 0;
    $(`score-${side}`).textContent = fmt(v);
    $(`bar-${side}`).style.width = `${Math.max(0, Math.min(100, (v / goal) * 100))}%`;
  }
  $("score-bot-label").textContent = name;
  $("target").textContent = target(goal);
  $("round-label").textContent = game.over
    ? `Game over · ${game.history.length} rounds`
    : game.next
      ? `Round ${game.next.round}`
      : "";
}

function renderMoves(state) {
  const game = state.game;
  const values = game.next && game.next.values;
  const rk = values ? ranks(values) : {};
  const enabled = canMove(state);
  for (const m of MOVES) {
    const btn = document.querySelector(`#moves button[data-move="${m}"]`);
    btn.querySelector(".move-value").textContent = values ? fmt(values[m]) : "–";
    btn.querySelector(".move-rank").textContent = rk[m] ? (rk[m] === "high" ? "★ high" : rk[m]) : "";
    btn.classList.toggle("is-high", rk[m] === "high");
    btn.classList.toggle("is-chosen", Boolean(state.pendingMove && state.pendingMove.move === m));
    btn.setAttribute("aria-disabled", String(!enabled));
    btn.setAttribute("aria-label", `${MOVE_LABEL[m]}${values ? `, worth ${fmt(values[m])}${rk[m] === "high" ? ", the most valuable move" : ""}` : ""}`);
  }
  $("moves").setAttribute("aria-busy", String(Boolean(state.pendingMove)));
  $("play-area").hidden = game.over;
  $("leave").hidden = game.over; // the end card offers the way out
}

export function renderBoard(state, shortcuts) {
  const game = state.game;
  $("game").hidden = game === null;
  if (!game) {
    return;
  }
  const name = opponentName(state, game.opponent);
  $("opponent-name").textContent = name;
  renderScore(game, name);
  renderMoves(state);
  const memory = memoryText(name, game.remembered);
  $("memory").hidden = memory === "";
  $("memory-text").textContent = memory;
  $("forget-me").hidden = !game.remembered;
  $("shortcuts").checked = shortcuts;
}
