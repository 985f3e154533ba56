import assert from "node:assert/strict";
import { test } from "node:test";

import { HUNTER, MOVES, PREY, signed } from "../../web/js/format.js";
import { bestMoves, explain, reach, roundPoints, scoreBefore } from "../../web/js/insight.js";

/** The policy's ev as engine/policy.py computes it: round points plus a bonus of 10 for reaching the target. */
function policyEv(probs, values, before, target = 10) {
  const t = Math.round(target * 10);
  const [pl, bot] = [Math.round(before.player * 10), Math.round(before.bot * 10)];
  const ev = {};
  for (const b of MOVES) {
    const v = Math.round(values[b] * 10);
    const h = HUNTER[b];
    const vh = Math.round(values[h] * 10);
    const won = v / 10 + (bot + v >= t ? 10 : 0);
    const lost = vh / 10 + (pl + vh >= t ? 10 : 0);
    const drawEnds = Math.max(pl + 5, bot + 5) >= t && pl !== bot;
    const draw = drawEnds ? (bot > pl ? 10 : -10) : 0;
    ev[b] = probs[PREY[b]] * won - probs[h] * lost + probs[b] * draw;
  }
  return ev;
}

/** A result message for a round played from `before`, with the policy's insight. */
function result({ probs, values, before, botMove, playerMove = "rock", source = "model", round = 8 }) {
  return {
    round,
    player_move: playerMove,
    bot_move: botMove,
    points: { player: 0, bot: 0 },
    score: before,
    insight: { family: "mlp", source, probs, ev: policyEv(probs, values, before) }
  };
}

const VALUES = { rock: 1.0, paper: 1.3, scissors: 1.8 };

test("round points are the bot's expected points minus yours, in the units on the buttons", () => {
  const probs = { rock: 0.54, paper: 0.26, scissors: 0.2 };
  const points = roundPoints(probs, VALUES);
  // paper beats rock: 0.54 * 1.3 won, scissors beats paper: 0.2 * 1.8 lost.
  assert.equal(points.paper, Math.round((0.54 * 1.3 - 0.2 * 1.8) * 100) / 100);
  assert.equal(points.rock, Math.round((0.2 * 1.0 - 0.26 * 1.3) * 100) / 100);
  assert.equal(points.scissors, Math.round((0.26 * 1.8 - 0.54 * 1.0) * 100) / 100);
  assert.deepEqual(bestMoves(points), ["paper"]);
});

test("the scores before a round and who can reach the target in it", () => {
  const before = scoreBefore({ score: { player: 9.5, bot: 8.5 }, points: { player: 0.5, bot: 0.5 } });
  assert.deepEqual(before, { player: 9.0, bot: 8.0 });
  assert.deepEqual(reach(VALUES, before, 10), { bot: [], player: ["rock", "paper", "scissors"], draw: false });
  assert.deepEqual(reach(VALUES, { player: 0, bot: 0 }, 10), { bot: [], player: [], draw: false });
  assert.equal(reach(VALUES, { player: 9.5, bot: 3 }, 10).draw, true);
});

test("mid-game: the best move on points was played, and the sentence says its number", () => {
  const probs = { rock: 0.54, paper: 0.26, scissors: 0.2 };
  const out = explain(result({ probs, values: VALUES, before: { player: 3, bot: 2 }, botMove: "paper" }), VALUES, 10, "Logan");
  assert.deepEqual(out.sentences, [
    "Logan expected you to play rock (54 %).",
    `On this round’s points, paper was its best move: ${signed(out.points.paper)}, what it expected to gain over you.`,
    "So it played paper."
  ]);
  assert.equal(out.weighed, false);
});

test("a mixed move is called a mix, with its own number", () => {
  const probs = { rock: 0.54, paper: 0.26, scissors: 0.2 };
  const out = explain(result({ probs, values: VALUES, before: { player: 3, bot: 2 }, botMove: "rock" }), VALUES, 10, "Logan");
  assert.equal(out.sentences[2], `It played rock (${signed(out.points.rock)}): it mixes its moves so that you cannot predict it.`);
});

test("near the end the game-win term is told in words, never as points beyond a round's", () => {
  // The case: Brian's ev all negative (paper -1.62, rock -5.05) because the player was close to 10.
  const probs = { rock: 0.25, paper: 0.3, scissors: 0.45 };
  const before = { player: 8.5, bot: 9.0 };
  const r = result({ probs, values: VALUES, before, botMove: "rock" });
  const out = explain(r, VALUES, 10, "Brian");
  for (const m of MOVES) {
    assert.ok(Math.abs(out.points[m]) <= 2, `${m}: ${out.points[m]}`);
  }
  assert.ok(Math.min(...MOVES.map((m) => r.insight.ev[m])) < -2); // what the old panel showed
  assert.deepEqual(out.ends, { bot: MOVES, player: ["scissors"], draw: false });
  assert.ok(out.sentences.some((s) => s.includes("one more win ends it: Brian reaches 10 with any win")));
  assert.ok(out.sentences.some((s) => s.includes("you reach 10 if you win with scissors")));
});

test("when the end of the game changes the choice, the sentence says why it left the best move on points", () => {
  // Bot at 8.5: winning with scissors (1.8) ends the game; on points alone rock is best.
  const probs = { rock: 0.2, paper: 0.2, scissors: 0.6 };
  const values = VALUES;
  const before = { player: 2, bot: 8.5 };
  const r = result({ probs, values, before, botMove: "scissors" });
  const out = explain(r, values, 10, "Forrest");
  assert.deepEqual(out.best, ["rock"]);
  assert.deepEqual(bestMoves(r.insight.ev), ["scissors"]);
  assert.equal(out.weighed, true);
  assert.equal(out.sentences[2],
    `It played scissors instead (${signed(out.points.scissors)}): it weighs the end of the game above this round’s points,` +
    " and one more win ends it: Forrest reaches 10 by winning with scissors.");
});

test("opening rounds say the move came from the script", () => {
  const probs = { rock: 0.34, paper: 0.33, scissors: 0.33 };
  const out = explain(result({ probs, values: VALUES, before: { player: 0, bot: 0 }, botMove: "scissors", source: "opening", round: 2 }),
    VALUES, 10, "Brian");
  assert.equal(out.sentences[0], "Round 2 was part of Brian’s scripted opening: it played scissors by the script.");
  assert.ok(!out.sentences.some((s) => s.includes("So it played")));
});

/** A small seeded generator, so that a failure can be replayed. */
function lcg(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test("every sentence agrees with the numbers shown (5,000 random rounds)", () => {
  const random = lcg(20240607);
  const valueSets = [VALUES, { rock: 1.6, paper: 1.0, scissors: 1.1 }, { rock: 1.5, paper: 2.0, scissors: 1.0 }];
  for (let i = 0; i < 5000; i++) {
    const raw = MOVES.map(() => random() + 0.01);
    const total = raw.reduce((a, b) => a + b, 0);
    const probs = Object.fromEntries(MOVES.map((m, k) => [m, Math.round((raw[k] / total) * 10000) / 10000]));
    const values = valueSets[i % 3];
    const before = { player: Math.floor(random() * 100) / 10, bot: Math.floor(random() * 100) / 10 };
    const botMove = MOVES[Math.floor(random() * 3)];
    const r = result({ probs, values, before, botMove });
    const out = explain(r, values, 10, "Bot");
    const text = out.sentences.join(" ");
    const where = `case ${i}: ${text}`;
    // The best move named is a best on the shown numbers, with its shown number.
    const named = /points, (?:no move was expected to gain: the best, |every move was expected to lose: )?([a-z ,]+?) (?:was its best move|came to|lost least)(?::|,) ([+−]?\d+\.\d\d)/.exec(text);
    assert.ok(named, where);
    const names = named[1].split(/, | or /);
    assert.deepEqual(names, out.best, where);
    const top = Math.max(...MOVES.map((m) => out.points[m]));
    assert.equal(named[2], signed(top), where);
    for (const m of names) {
      assert.equal(out.points[m], top, where);
    }
    // The sign words match the sign of the best number.
    assert.equal(text.includes("best move:"), top > 0, where);
    assert.equal(text.includes("lost least"), top < 0, where);
    // A move called the choice on points is a best; one played otherwise is quoted with its own number.
    if (text.includes("So it played")) {
      assert.ok(out.best.includes(botMove), where);
    } else {
      assert.ok(!out.best.includes(botMove), where);
      assert.ok(text.includes(`It played ${botMove} `), where);
      assert.ok(text.includes(`(${signed(out.points[botMove])})`), where);
    }
    // "instead" only when the end of the game changed the choice, and then the sentence says how.
    assert.equal(text.includes("instead"), out.weighed && bestMoves(r.insight.ev).includes(botMove), where);
    const ends = reach(values, before, 10);
    assert.equal(/one more win ends it/i.test(text), ends.bot.length > 0, where);
    assert.equal(/you reach 10 (if you win with|with any win)/i.test(text), ends.player.length > 0, where);
    // Every number in the text is a round's points, never the policy's bonus.
    for (const n of text.match(/[+−]\d+\.\d\d/g) || []) {
      assert.ok(Math.abs(Number(n.replace("−", "-"))) <= 2, where);
    }
  }
});
