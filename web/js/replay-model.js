/* A stored game (GET /api/games/{id}) as the page's results, for the replay (pure). */
import { MOVE_LABEL, fmt } from "./format.js";

export const TARGET = 10;

/** The game id of a replay page's path ("/games/abc" -> "abc"); "" when there is none. */
export function gameIdFromPath(path) {
  const match = /^\/games\/([^/]+)\/?$/.exec(String(path));
  return match ? decodeURIComponent(match[1]) : "";
}

/** The game's rounds as result messages (what the game page shows), the family in each insight. */
export function toResults(game) {
  return game.rounds.map((r) => ({
    round: r.round,
    player_move: r.player_move,
    bot_move: r.bot_move,
    outcome: r.outcome,
    points: r.points,
    score: r.score,
    nonce: r.nonce,
    insight: { ...r.insight, family: game.family }
  }));
}

/** The state the game page's insight renderer reads, showing round `selected`. */
export function replayState(game, selected) {
  return {
    game: { game_id: game.game_id, opponent: game.opponent, target: TARGET, history: toResults(game) },
    opponents: [],
    selected
  };
}

const OUTCOME = { win: "the player won it", lose: "the bot won it", draw: "a draw" };

/** One round in words: "Round 3: the player played Rock (1.5), the bot Paper: the bot won it. 4.0 – 2.5." */
export function roundLine(r, name) {
  const v = r.values || {};
  return (
    `Round ${r.round}: the player played ${MOVE_LABEL[r.player_move]} (${fmt(v[r.player_move])}), ` +
    `${name} ${MOVE_LABEL[r.bot_move]} (${fmt(v[r.bot_move])}): ${OUTCOME[r.outcome] || r.outcome}. ` +
    `Score ${fmt(r.score.player)} – ${fmt(r.score.bot)}.`
  );
}

/** The summary under the title: who played, how it ended, when. */
export function summaryLine(game, name) {
  const who = game.player ? game.player : "An anonymous player";
  const rounds = game.rounds.length;
  const score = `${fmt(game.score.player)} – ${fmt(game.score.bot)}`;
  if (!game.over) {
    return `${who} against ${name}: not finished (${rounds} ${rounds === 1 ? "round" : "rounds"} so far, ${score}).`;
  }
  const winner = game.score.player > game.score.bot ? who : game.score.bot > game.score.player ? name : "nobody";
  return `${who} against ${name}: ${winner === "nobody" ? "a tie" : `${winner} won`}, ${score} after ${rounds} rounds.`;
}
