/* "Inside the bot's head": what a round's insight means in the units on the buttons (pure).
 *
 * The server's `insight.ev` is the policy's value of each bot move, which adds a bonus of
 * 10 whenever a side would reach the target: near the end it dwarfs any round's points.
 * So the page shows, for each bot move b, the points this round is expected to bring the
 * bot minus those it brings you, from the prediction p and the round's values V:
 *     points(b) = p(prey(b)) * V[b] - p(hunter(b)) * V[hunter(b)]
 * (a draw gives 0.5 to each side: nothing between them). When a side can reach the target
 * this round, or the policy's choice differs from the best move on points, the sentences
 * say so in words. Every number in a sentence is the one shown next to that move.
 */
import { HUNTER, MOVES, PREY, orList, pct, signed, target as fmtTarget } from "./format.js";

const DRAW_TENTHS = 5;

const tenths = (x) => Math.round(Number(x) * 10);
const cents = (x) => Math.round(Number(x) * 100) / 100;

/** Expected points of this round for each bot move: the bot's minus the player's, two decimals. */
export function roundPoints(probs, values) {
  const out = {};
  for (const b of MOVES) {
    const gain = (Number(probs[PREY[b]]) || 0) * Number(values[b]);
    const loss = (Number(probs[HUNTER[b]]) || 0) * Number(values[HUNTER[b]]);
    out[b] = cents(gain - loss) + 0; // + 0: no "-0"
  }
  return out;
}

/** Which wins reach the target this round, from the scores before it. */
export function reach(values, before, target) {
  const t = tenths(target);
  const bot = tenths(before.bot);
  const player = tenths(before.player);
  return {
    bot: MOVES.filter((b) => bot + tenths(values[b]) >= t), // the bot wins with b
    player: MOVES.filter((m) => player + tenths(values[m]) >= t), // the player wins with m
    draw: Math.max(bot, player) + DRAW_TENTHS >= t
  };
}

/** The scores before a round, from its result (score after it, minus the points it gave). */
export function scoreBefore(result) {
  const after = result.score || {};
  const got = result.points || {};
  return {
    player: (tenths(after.player) - tenths(got.player)) / 10,
    bot: (tenths(after.bot) - tenths(got.bot)) / 10
  };
}

/** The moves with the greatest value in `table` (all of them on a tie). */
export function bestMoves(table) {
  const top = Math.max(...MOVES.map((m) => Number(table[m])));
  return MOVES.filter((m) => Number(table[m]) === top);
}

function endgamePhrase(ends, name, target) {
  const parts = [];
  if (ends.bot.length) {
    const how = ends.bot.length === MOVES.length ? "with any win" : `by winning with ${orList(ends.bot)}`;
    parts.push(`one more win ends it: ${name} reaches ${fmtTarget(target)} ${how}`);
  }
  if (ends.player.length) {
    const how = ends.player.length === MOVES.length ? "with any win" : `if you win with ${orList(ends.player)}`;
    parts.push(`you reach ${fmtTarget(target)} ${how}`);
  }
  if (!parts.length && ends.draw) {
    parts.push("even a draw ends the game");
  }
  return parts.join("; ");
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/**
 * The insight of one round, explained.
 * `result`: the round's result message; `values`: its round values; `name`: the bot's name.
 * Returns {expected, points, best, weighed, ends, sentences}: `points` is what the panel shows.
 */
export function explain(result, values, target, name) {
  const ins = result.insight || {};
  const probs = ins.probs || {};
  const played = result.bot_move;
  const expected = bestMoves(probs)[0];
  const points = roundPoints(probs, values);
  const best = bestMoves(points);
  const evBest = bestMoves(ins.ev || {});
  const ends = reach(values, scoreBefore(result), target);
  const endgame = endgamePhrase(ends, name, target);
  // The game-win term changed the policy's choice: its best move is not the best on points.
  const weighed = endgame !== "" && evBest.length > 0 && !evBest.some((m) => best.includes(m));
  const guess = `you to play ${expected} (${pct(probs[expected])})`;
  const top = points[best[0]];
  const onPoints =
    top > 0
      ? `On this round’s points, ${orList(best)} was its best move: ${signed(top)}, what it expected to gain over you.`
      : top === 0
        ? `On this round’s points, no move was expected to gain: the best, ${orList(best)}, came to ${signed(top)}.`
        : `On this round’s points, every move was expected to lose: ${orList(best)} lost least, ${signed(top)}.`;
  const sentences = [];
  if (ins.source === "opening") {
    sentences.push(`Round ${result.round} was part of ${name}’s scripted opening: it played ${played} by the script.`);
    sentences.push(`Its predictor expected ${guess}.`, onPoints);
    if (endgame) {
      sentences.push(capital(endgame) + ".");
    }
    return { expected, points, best, weighed: false, ends, sentences };
  }
  sentences.push(`${name} expected ${guess}.`, onPoints);
  if (best.includes(played)) {
    sentences.push(`So it played ${played}.`);
    if (endgame) {
      sentences.push(capital(endgame) + ".");
    }
  } else if (weighed && evBest.includes(played)) {
    sentences.push(`It played ${played} instead (${signed(points[played])}): it weighs the end of the game above this round’s points, and ${endgame}.`);
  } else {
    sentences.push(`It played ${played} (${signed(points[played])}): it mixes its moves so that you cannot predict it.`);
    if (endgame) {
      sentences.push(capital(endgame) + ".");
    }
  }
  return { expected, points, best, weighed, ends, sentences };
}
