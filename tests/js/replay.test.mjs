import assert from "node:assert/strict";
import { test } from "node:test";

import { explain } from "../../web/js/insight.js";
import { gameIdFromPath, replayState, roundLine, summaryLine, toResults } from "../../web/js/replay-model.js";

const GAME = {
  game_id: "Ab-9_x",
  opponent: "forrest",
  family: "xgboost",
  player: "Ann",
  over: true,
  score: { player: 10.5, bot: 8.0 },
  rounds: [
    {
      round: 1,
      values: { rock: 1.0, paper: 1.3, scissors: 1.8 },
      player_move: "scissors",
      bot_move: "rock",
      outcome: "lose",
      points: { player: 0.0, bot: 1.0 },
      score: { player: 0.0, bot: 1.0 },
      nonce: "ab",
      insight: { source: "opening", probs: { rock: 0.2, paper: 0.3, scissors: 0.5 }, ev: { rock: 0.1, paper: 0.0, scissors: 0.2 } }
    },
    {
      round: 2,
      values: { rock: 1.5, paper: 2.0, scissors: 1.0 },
      player_move: "paper",
      bot_move: "scissors",
      outcome: "lose",
      points: { player: 0.0, bot: 1.0 },
      score: { player: 0.0, bot: 2.0 },
      nonce: "cd",
      insight: { source: "model", probs: { rock: 0.1, paper: 0.7, scissors: 0.2 }, ev: { rock: -0.5, paper: 0.1, scissors: 0.6 } }
    }
  ]
};

test("the game id comes from the page's path, and nothing else does", () => {
  assert.equal(gameIdFromPath("/games/Ab-9_x"), "Ab-9_x");
  assert.equal(gameIdFromPath("/games/Ab-9_x/"), "Ab-9_x");
  assert.equal(gameIdFromPath("/games/a%20b"), "a b");
  assert.equal(gameIdFromPath("/games/"), "");
  assert.equal(gameIdFromPath("/other/x"), "");
});

test("stored rounds become the results the game page explains", () => {
  const results = toResults(GAME);
  assert.equal(results.length, 2);
  assert.equal(results[1].insight.family, "xgboost");
  assert.deepEqual(results[1].score, { player: 0.0, bot: 2.0 });
  const state = replayState(GAME, 2);
  assert.equal(state.selected, 2);
  assert.equal(state.game.target, 10);
  // the same explanation as during play: points before the round come from its result
  const out = explain(results[1], GAME.rounds[1].values, 10, "Forrest");
  assert.deepEqual(out.points, { rock: -1.1, paper: 0, scissors: 0.55 });
  assert.ok(out.sentences.some((s) => s.includes("So it played scissors")));
});

test("rounds and the game are told in words with their numbers", () => {
  assert.equal(
    roundLine(GAME.rounds[1], "Forrest"),
    "Round 2: the player played Paper (2.0), Forrest Scissors (1.0): the bot won it. Score 0.0 – 2.0."
  );
  assert.equal(summaryLine(GAME, "Forrest"), "Ann against Forrest: Ann won, 10.5 – 8.0 after 2 rounds.");
  const open = { ...GAME, over: false, player: null, score: { player: 0, bot: 2 } };
  assert.equal(summaryLine(open, "Forrest"), "An anonymous player against Forrest: not finished (2 rounds so far, 0.0 – 2.0).");
});
