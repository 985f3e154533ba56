import assert from "node:assert/strict";
import { test } from "node:test";

import { backoff } from "../../web/js/net.js";
import { offlineText } from "../../web/js/render/connection.js";
import { headline, summary } from "../../web/js/render/endcard.js";
import { winners } from "../../web/js/render/leaderboard.js";

test("reconnects back off exponentially with jitter, capped at 15 s (+25 %)", () => {
  assert.equal(backoff(0, 0.5), 500);
  assert.equal(backoff(3, 0.5), 4000);
  assert.equal(backoff(20, 0.5), 15000);
  assert.equal(backoff(20, 0.999999), 18750);
  assert.equal(backoff(1, 0), 750);
});

test("the offline banner counts down to the next attempt", () => {
  assert.equal(offlineText({ conn: "offline", retryAt: 10_000 }, 6_200), "Reconnecting in 4 s…");
  assert.equal(offlineText({ conn: "offline", retryAt: 10_000 }, 10_000), "Reconnecting…");
  assert.equal(offlineText({ conn: "connecting", retryAt: null }, 0), "Reconnecting…");
});

test("the leaderboard keeps only players who have won", () => {
  const players = [{ player: "Ann", wins: 2, games: 3 }, { player: "Bob", wins: 0, games: 5 }, { player: null, wins: 1, games: 1 }];
  assert.deepEqual(winners(players).map((p) => p.player), ["Ann", null]);
  assert.deepEqual(winners(undefined), []);
});

test("the end card speaks the player's words", () => {
  const r = (outcome, player_move, top) => ({ outcome, player_move, insight: { probs: { rock: 0.2, paper: 0.2, scissors: 0.2, [top]: 0.6 } } });
  const game = { winner: "bot", history: [r("win", "rock", "rock"), r("lose", "paper", "rock"), r("draw", "rock", "scissors")] };
  assert.equal(headline(game, "Forrest"), "Forrest wins");
  assert.equal(summary(game, "Forrest"), "You won 1 round, Forrest won 1, 1 was a draw. Forrest predicted your move in 1 of 3 rounds.");
});
