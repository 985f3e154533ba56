import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { roundValues, valuesFromHashes, verifyRound } from "../../web/js/fairplay.js";
import { sha256Hex } from "../../web/js/sha256.js";

const sha = async (text) => sha256Hex(text);
const nodeSha = (text) => createHash("sha256").update(text, "utf8").digest("hex");

test("the pure-JS SHA-256 agrees with node's", () => {
  for (const text of ["", "abc", "g-1:3:rock:00ff", "Zoë ✓ 😀", "x".repeat(1000), "y".repeat(55), "z".repeat(64)]) {
    assert.equal(sha256Hex(text), nodeSha(text), text);
  }
});

test("round values match game.md's test vectors", async () => {
  const vectors = [
    ["demo", 1, [1.6, 1.0, 1.1]],
    ["demo", 2, [1.5, 2.0, 1.0]],
    ["demo", 3, [1.0, 1.5, 2.0]],
    ["g-test", 1, [1.0, 1.3, 1.8]],
    ["g-test", 2, [1.7, 1.0, 1.2]],
    ["g-test", 4, [1.0, 1.2, 1.7]]
  ];
  for (const [id, round, [rock, paper, scissors]] of vectors) {
    assert.deepEqual(await roundValues(id, round, sha), { rock, paper, scissors }, `${id} ${round}`);
  }
});

test("values: high beats middle, middle beats low, low beats high", () => {
  // low index 0 (rock), base 1.3: rock 1.0; scissors (beaten by rock) high 1.8; paper middle 1.3.
  assert.deepEqual(valuesFromHashes("0000", "0002"), { rock: 1.0, paper: 1.3, scissors: 1.8 });
});

test("a commitment verifies only with the move and nonce it was made with", async () => {
  const gameId = "g-example";
  const nonce = "00112233445566778899aabbccddeeff";
  const commit = nodeSha(`${gameId}:4:paper:${nonce}`);
  assert.equal(commit, "4bc7899993f9da83d98b3fadea44bd88eb5333c42798ab675da70632ed76e172"); // docs/protocol.md
  const result = { round: 4, bot_move: "paper", nonce };
  assert.equal(await verifyRound(gameId, result, commit, sha), "ok");
  assert.equal(await verifyRound(gameId, result, commit.toUpperCase(), sha), "ok");
  assert.equal(await verifyRound(gameId, { ...result, bot_move: "rock" }, commit, sha), "bad");
  assert.equal(await verifyRound(gameId, { ...result, round: 5 }, commit, sha), "bad");
  assert.equal(await verifyRound(gameId, { ...result, nonce: nonce.replace("0", "1") }, commit, sha), "bad");
  assert.equal(await verifyRound(gameId, result, "", sha), "unknown");
  assert.equal(await verifyRound(gameId, { round: 4, bot_move: "paper" }, commit, sha), "unknown");
});
