/* The last round's result under the buttons, and the page's one polite live region, which
 * says each round's result and the score (and the end of the game) once.
 */
import { MOVE_LABEL, fmt } from "../format.js";
import { $, el, opponentName } from "./dom.js";

export function outcomeText(outcome, name) {
  return outcome === "win" ? "You win the round" : outcome === "lose" ? `${name} wins the round` : "Draw";
}

function verdict(last, name) {
  const pts = last.points || {};
  const text = outcomeText(last.outcome, name);
  if (last.outcome === "win") {
    return `${text} (+${fmt(pts.player)})`;
  }
  return last.outcome === "lose" ? `${text} (+${fmt(pts.bot)} for ${name})` : `${text} (+${fmt(pts.player)} each)`;
}

/** What the live region says after a round: the moves, who won it, the score. */
export function announcement(game, name) {
  const last = game.history[game.history.length - 1];
  const score = `Score: you ${fmt(game.score.player)}, ${name} ${fmt(game.score.bot)}.`;
  const round = `Round ${last.round}: you played ${last.player_move}, ${name} played ${last.bot_move}. ${verdict(last, name)}. ${score}`;
  if (!game.over) {
    return round;
  }
  const end = game.winner === "player" ? "You win the game!" : game.winner === "bot" ? `${name} wins the game.` : "The game is a tie.";
  return `${round} ${end}`;
}

let announced = "";

function announce(game, name) {
  const key = `${game.game_id}:${game.history.length}`;
  if (key === announced) {
    return;
  }
  const first = !announced.startsWith(`${game.game_id}:`);
  announced = key;
  if (!first && game.history.length) {
    $("announcer").textContent = announcement(game, name);
  }
}

let shown = "";

export function renderResult(state, verify) {
  const game = state.game;
  if (!game) {
    announced = "";
    return;
  }
  const name = opponentName(state, game.opponent);
  announce(game, name);
  const last = game.history[game.history.length - 1];
  const key = last ? `${game.game_id}:${last.round}` : `${game.game_id}:0`;
  if (key === shown) {
    return;
  }
  shown = key;
  const box = $("last-result");
  if (!last) {
    box.className = "last-result";
    box.replaceChildren(el("p", "last-line muted", "Pick a move to play round 1. The bot has already chosen its move: it cannot see yours."));
    return;
  }
  box.className = `last-result outcome-${String(last.outcome)}`;
  const line = el("p", "last-line");
  line.append(
    el("span", "tag", `Round ${last.round}`),
    " You played ",
    el("strong", null, MOVE_LABEL[last.player_move] || last.player_move),
    `, ${name} played `,
    el("strong", null, MOVE_LABEL[last.bot_move] || last.bot_move),
    ". ",
    el("span", "last-verdict", `${verdict(last, name)}.`)
  );
  const fair = el("p", "last-fair muted", "Checking fair play…");
  box.replaceChildren(line, fair);
  verify(game.game_id, last).then((status) => {
    fair.textContent =
      status === "ok"
        ? `✓ Fair play verified: ${name} committed to ${last.bot_move} before you moved.`
        : status === "bad"
          ? "⚠ Commit mismatch: the revealed move does not match the commitment!"
          : "Fair play not verified: this browser did not see the commitment for this round.";
    fair.className = `last-fair ${status === "ok" ? "ok" : status === "bad" ? "bad" : "muted"}`;
  });
}
