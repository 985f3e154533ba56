/* The end of a game in the player's words: who won, the score, how the rounds went;
 * the model, its version and the opening behind "Details".
 */
import { fmt } from "../format.js";
import { bestMoves } from "../insight.js";
import { $, opponentName } from "./dom.js";

const RANK_WORD = { H: "high", M: "middle", L: "low" };
const OPENINGS = {
  crescendo: "LMH",
  denouement: "HML",
  "paper-dolls": "LMM",
  "fistful-of-dollars": "HLL",
  "scissor-sandwich": "LML",
  bureaucrat: "LLL",
  avalanche: "HHH",
  toolbox: "MMM",
  razor: "MLH",
  switchblade: "MHL"
};
const ALIAS_WORDS = {
  Production: "its current model",
  B: "a challenger model, tried against the current one"
};

/** "Fistful of dollars: the high, low, low move in rounds 1–3". */
export function openingText(opening) {
  const ranks = OPENINGS[opening];
  const title = String(opening).replace(/-/g, " ");
  const named = title.charAt(0).toUpperCase() + title.slice(1);
  return ranks ? `${named}: the ${[...ranks].map((r) => RANK_WORD[r]).join(", ")} move in rounds 1–3` : named;
}

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
  $("opening-name").textContent = ins.opening ? openingText(ins.opening) : "unknown";
  $("play-again").textContent = `Play ${name} again`;
  $("replay-link").href = `/games/${encodeURIComponent(game.game_id)}`;
  box.hidden = false;
}
