import assert from "node:assert/strict";
import { test } from "node:test";

import { canMove, initialState, needsConfirmToLeave, shownResult, step, validateName } from "../../web/js/session.js";

const OPPONENTS = [{ id: "forrest", name: "Forrest", family: "xgboost" }];
const NEXT1 = { round: 1, values: { rock: 1.6, paper: 1.0, scissors: 1.1 }, commit: "c1" };
const NEXT2 = { round: 2, values: { rock: 1.5, paper: 2.0, scissors: 1.0 }, commit: "c2" };

/** Feed events in order; returns the last state and every effect. */
function run(state, ...events) {
  const effects = [];
  for (const event of events) {
    const [next, out] = step(state, event);
    state = next;
    effects.push(...out);
  }
  return [state, effects];
}

const msg = (m) => ({ type: "message", msg: m });
const welcome = msg({ type: "welcome", protocol: 1, opponents: OPPONENTS });
const started = msg({
  type: "game", game_id: "g1", token: "t1", opponent: "forrest", target: 10,
  score: { player: 0, bot: 0 }, over: false, winner: null, history: [], next: NEXT1
});
const result1 = msg({
  type: "result", game_id: "g1", round: 1, player_move: "rock", bot_move: "paper", outcome: "lose",
  points: { player: 0, bot: 1.0 }, score: { player: 0, bot: 1.0 }, nonce: "n1", over: false, winner: null,
  insight: {}, next: NEXT2
});

function playing() {
  return run(initialState(), welcome, { type: "start", opponent: "forrest", name: "Ann" }, started);
}

test("start: sends the start with the name, stores the game with its token, focuses the moves", () => {
  const [state, effects] = playing();
  assert.deepEqual(effects.filter((e) => e.type === "send").map((e) => e.msg), [
    { type: "start", opponent: "forrest", player: "Ann" }
  ]);
  assert.deepEqual(effects.find((e) => e.type === "save").game, { game_id: "g1", token: "t1", opponent: "forrest" });
  assert.deepEqual(effects.find((e) => e.type === "round"), { type: "round", gameId: "g1", next: NEXT1 });
  assert.deepEqual(effects.find((e) => e.type === "focus"), { type: "focus", target: "moves" });
  assert.equal(state.pendingStart, null);
  assert.equal(state.game.game_id, "g1");
  assert.ok(canMove(state));
  assert.ok(needsConfirmToLeave(state));
});

test("a bad name is refused before anything is sent", () => {
  const [state, effects] = run(initialState(), welcome, { type: "start", opponent: "forrest", name: "<b>x</b>" });
  assert.equal(effects.filter((e) => e.type === "send").length, 0);
  assert.match(state.nameError, /letters/);
  assert.deepEqual(effects, [{ type: "focus", target: "name" }]);
  assert.equal(validateName("  Zoë ").name, "Zoë");
  assert.equal(validateName("").name, null);
  assert.equal(validateName("x".repeat(25)).ok, false);
});

test("a game message nobody asked for is ignored", () => {
  const [state, effects] = run(initialState(), welcome, started);
  assert.equal(state.game, null);
  assert.deepEqual(effects, []);
});

test("a move is sent once for the open round; the result opens the next", () => {
  let [state] = playing();
  let effects;
  [state, effects] = run(state, { type: "move", move: "rock" }, { type: "move", move: "paper" });
  assert.deepEqual(effects, [{ type: "send", msg: { type: "move", game_id: "g1", round: 1, move: "rock" } }]);
  assert.ok(!canMove(state));
  [state, effects] = run(state, result1);
  assert.equal(state.pendingMove, null);
  assert.equal(state.game.history.length, 1);
  assert.deepEqual(state.game.score, { player: 0, bot: 1.0 });
  assert.equal(state.game.next.round, 2);
  assert.deepEqual(effects, [{ type: "round", gameId: "g1", next: NEXT2 }]);
  // A replayed result (safe retry after a reconnect) changes nothing.
  const [again, none] = run(state, result1);
  assert.equal(again.game.history.length, 1);
  assert.deepEqual(none, []);
});

test("a result from a later round than expected asks for the game again", () => {
  const [state] = playing();
  const [, effects] = run(state, msg({ ...result1.msg, round: 3 }));
  assert.deepEqual(effects, [{ type: "send", msg: { type: "resume", game_id: "g1", token: "t1" } }]);
});

test("the last result ends the game, refreshes the boards and focuses the end card", () => {
  const [state, effects] = run(playing()[0], { type: "move", move: "rock" },
    msg({ ...result1.msg, score: { player: 0, bot: 10.2 }, over: true, winner: "bot", next: null }));
  assert.ok(state.game.over);
  assert.equal(state.game.winner, "bot");
  assert.ok(!canMove(state));
  assert.ok(!needsConfirmToLeave(state));
  assert.deepEqual(effects.slice(1), [{ type: "refresh" }, { type: "focus", target: "end" }]);
});

test("offline: moves are refused with a notice; the welcome resumes the stored game", () => {
  let [state] = playing();
  let effects;
  [state, effects] = run(state, { type: "move", move: "rock" }, { type: "offline", retryAt: 5000 });
  assert.equal(state.conn, "offline");
  assert.equal(state.retryAt, 5000);
  assert.equal(state.pendingMove, null); // the move may be lost: the resume tells
  [state, effects] = run(state, { type: "move", move: "paper" });
  assert.deepEqual(effects, []);
  assert.match(state.notice.text, /offline/);
  const id = state.notice.id;
  [state] = run(state, { type: "move", move: "paper" });
  assert.equal(state.notice.id, id + 1); // every refused move is told, not only the first
  [state, effects] = run(state, { type: "connecting" }, welcome);
  assert.equal(state.conn, "online");
  assert.deepEqual(effects, [{ type: "send", msg: { type: "resume", game_id: "g1", token: "t1" } }]);
  assert.ok(!canMove(state)); // until the game arrives
  [state, effects] = run(state, msg({ ...started.msg, token: undefined, history: [result1.msg], next: NEXT2,
    score: { player: 0, bot: 1.0 } }));
  assert.equal(state.resuming, null);
  assert.equal(state.game.history.length, 1);
  assert.ok(canMove(state));
  assert.ok(!effects.some((e) => e.type === "focus")); // the same game: the focus stays where it is
});

test("a resume the server refuses forgets the game; one it cannot serve now is retried", () => {
  const saved = { game_id: "g9", token: "t9", opponent: "forrest" };
  let [state, effects] = run(initialState(saved), welcome, msg({ type: "error", code: "bad_token", message: "no", game_id: "g9" }));
  assert.equal(state.saved, null);
  assert.deepEqual(effects.slice(1), [{ type: "save", game: null }, { type: "focus", target: "picker" }]);
  [state, effects] = run(initialState(saved), welcome, msg({ type: "error", code: "unavailable", message: "busy" }));
  assert.deepEqual(effects.slice(1), [{ type: "resumeLater", gameId: "g9" }]);
  [state, effects] = run(state, { type: "resumeAgain", gameId: "g9" });
  assert.deepEqual(effects, [{ type: "send", msg: { type: "resume", game_id: "g9", token: "t9" } }]);
});

test("out of step with the server (wrong_round): the game is fetched again", () => {
  const [state] = playing();
  const [, effects] = run(state, { type: "move", move: "rock" },
    msg({ type: "error", code: "wrong_round", message: "x", game_id: "g1" }));
  assert.deepEqual(effects.at(-1), { type: "send", msg: { type: "resume", game_id: "g1", token: "t1" } });
});

test("leave forgets the game; select toggles the shown round", () => {
  let [state] = run(playing()[0], { type: "move", move: "rock" }, result1);
  assert.equal(shownResult(state).round, 1);
  [state] = run(state, { type: "select", round: 1 });
  assert.equal(state.selected, 1);
  [state] = run(state, { type: "select", round: 1 });
  assert.equal(state.selected, null);
  let effects;
  [state, effects] = run(state, { type: "leave" });
  assert.equal(state.game, null);
  assert.equal(state.saved, null);
  assert.deepEqual(effects, [{ type: "save", game: null }, { type: "focus", target: "picker" }]);
});
