import assert from "node:assert/strict";
import { test } from "node:test";

import { KEY_LENGTH, memoryText, newPlayerKey, validKey } from "../../web/js/memory.js";
import { FORGOTTEN, initialState, step } from "../../web/js/session.js";

test("a new key is KEY_LENGTH URL-safe characters the server accepts, from the random source", () => {
  const key = newPlayerKey((a) => a.map((_, i) => i * 9));
  assert.equal(key.length, KEY_LENGTH);
  assert.ok(validKey(key));
  assert.equal(newPlayerKey((a) => a.fill(255)), "_".repeat(KEY_LENGTH));
  assert.notEqual(newPlayerKey(), newPlayerKey()); // crypto.getRandomValues
});

test("validKey follows the server's rule", () => {
  assert.ok(validKey("a".repeat(16)) && validKey("Zz09_-".repeat(10) + "abcd"));
  assert.ok(!validKey("a".repeat(15)) && !validKey("a".repeat(65)) && !validKey("a+b/".repeat(5)) && !validKey(null));
});

test("memoryText says how many games the bot remembers, nothing without a key", () => {
  assert.equal(memoryText("Brian", 3), "Brian remembers 3 games with you.");
  assert.equal(memoryText("Brian", 1), "Brian remembers 1 game with you.");
  assert.equal(memoryText("Logan", 0), "Logan has not played you before.");
  assert.equal(memoryText("Brian", null), "");
  assert.equal(memoryText("Brian", undefined), "");
});

test("a start sends the key; the game keeps what the server remembered; forgetting clears it", () => {
  let state = step(initialState(), { type: "message", msg: { type: "welcome", protocol: 1, opponents: [] } })[0];
  const [asked, effects] = step(state, { type: "start", opponent: "brian", name: "", key: "k".repeat(32) });
  assert.deepEqual(effects.find((e) => e.type === "send").msg, { type: "start", opponent: "brian", key: "k".repeat(32) });
  const game = { type: "game", game_id: "g", token: "t", opponent: "brian", target: 10, score: { player: 0, bot: 0 },
    over: false, winner: null, history: [], next: null, remembered: 3 };
  state = step(asked, { type: "message", msg: game })[0];
  assert.equal(state.game.remembered, 3);
  const failed = step(state, { type: "forgotten", ok: false })[0];
  assert.equal(failed.game.remembered, 3);
  const forgotten = step(state, { type: "forgotten", ok: true })[0];
  assert.equal(forgotten.game.remembered, null);
  assert.equal(forgotten.notice.text, FORGOTTEN);
  const old = step(asked, { type: "message", msg: { ...game, remembered: undefined } })[0];
  assert.equal(old.game.remembered, null); // a server without memory
});
