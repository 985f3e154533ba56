/* The end of a game in the player's words: who won, the score, how the rounds went;
 * the model and its version behind "Details".
 */
import { fmt } from "../format.js";
import { bestMoves } from "../insight.js";
import { $, opponentName } from "./dom.js";

const ALIAS_WORDS = {
  Production: "its current model",
  B: "a challenger model, tried against the current one"
};

export function headline(game, name) {
  return game.winner === "player" ? "You win!" : game.winner === "bot" ? `${name} wins` : "It’s a tie";
}

/** How the rounds went: wins, losses, draws and how often the bot read the player's move. */
export function summary(game, name) {
  const count = (o) => game.history.filter((r) => r.outcome === o).length;
  const read = game.history.filter((r) => r.insight && r.insight.probs && bestMoves(r.insight.probs)[0] === r.player_move).length;
  const draws = count("draw");
  return (
    `You won ${count("win")} ${count("win") === 1 ? "round" : "rounds"}, ${name} won ${count("lose")}` +
    `${draws ? `, ${draws} ${draws === 1 ? "was a draw" : "were draws"}` : ""}. ` +
    `${name} predicted your move in ${read} of ${game.history.length} rounds.`
  );
}

export function renderEndCard(state) {
  const game = state.game;
  const box = $("game-over");
  if (!game || !game.over) {
    box.hidden = true;
    return;
  }
  const name = opponentName(state, game.opponent);
  box.className = `game-over winner-${String(game.winner)}`;
  $("winner").textContent = headline(game, name);
  $("final-score").textContent = `You ${fmt(game.score.player)} – ${fmt(game.score.bot)} ${name}, after ${game.history.length} rounds.`;
  $("final-summary").textContent = summary(game, name);
  const last = game.history[game.history.length - 1];
  const ins = (last && last.insight) || {};
  $("model-alias").textContent = ALIAS_WORDS[ins.alias] || (ins.alias ? `the ${ins.alias} model` : "an unknown model");
  $("model-version").textContent = ins.version ? String(ins.version) : "unknown";
  $("play-again").textContent = `Play ${name} again`;
  $("replay-link").href = `/games/${encodeURIComponent(game.game_id)}`;
  box.hidden = false;
}
