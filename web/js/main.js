/* RPS Quest — the browser client's entry point: wires the network, the session state
 * machine, storage and the renderers. Effects of the state machine are carried out here.
 */
import { digest, roundValues, verifyRound } from "./fairplay.js";
import { Connection, socketUrl } from "./net.js";
import { renderBoard } from "./render/board.js";
import { renderConnection, renderNotice } from "./render/connection.js";
import { $ } from "./render/dom.js";
import { renderEndCard } from "./render/endcard.js";
import { renderHistory } from "./render/history.js";
import { renderInsight } from "./render/insight.js";
import { renderLeaderboard } from "./render/leaderboard.js";
import { renderPicker } from "./render/picker.js";
import { renderResult } from "./render/result.js";
import { initialState, needsConfirmToLeave, step } from "./session.js";
import { Storage } from "./storage.js";

const KEY_MOVES = { r: "rock", p: "paper", s: "scissors", 1: "rock", 2: "paper", 3: "scissors" };
const RESUME_RETRY_MS = 3000;

const storage = new Storage();
let state = initialState(storage.savedGame());
let stats = {};
let shortcuts = storage.shortcuts();
const valuesCache = new Map(); // "game:round" -> values or a Promise of them
const verifyCache = new Map();

const connection = new Connection(socketUrl(window.location), dispatch);

/** A round's values: from the round as it opened, else recomputed from SHA-256 (game.md). */
function values(gameId, round) {
  const key = `${gameId}:${round}`;
  if (!valuesCache.has(key)) {
    const seen = storage.round(gameId, round);
    const pending = seen && seen.v ? Promise.resolve(seen.v) : roundValues(gameId, round, digest);
    valuesCache.set(key, pending);
    pending.then((v) => {
      valuesCache.set(key, v);
      render();
    });
  }
  return Promise.resolve(valuesCache.get(key));
}

/** The values if known now (null while they are being computed). */
function knownValues(gameId, round) {
  const v = valuesCache.get(`${gameId}:${round}`);
  if (v === undefined) {
    values(gameId, round);
  }
  return v && !(v instanceof Promise) ? v : null;
}

function verify(gameId, result) {
  const seen = storage.round(gameId, result.round);
  const commit = seen ? seen.c : "";
  const key = `${gameId}:${result.round}:${result.bot_move}:${result.nonce}|${commit}`;
  if (!verifyCache.has(key)) {
    verifyCache.set(key, verifyRound(gameId, result, commit, digest));
  }
  return verifyCache.get(key);
}

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!r.ok) {
    throw new Error(`${path}: HTTP ${r.status}`);
  }
  return r.json();
}

function refresh() {
  getJSON("/api/opponents")
    .then((data) => {
      stats = Object.fromEntries(
        (Array.isArray(data.opponents) ? data.opponents : []).map((o) => [String(o.id), { games: Number(o.games) || 0, bot_win_rate: o.bot_win_rate }])
      );
      render();
    })
    .catch(() => {}); // optional decoration
  getJSON("/api/leaderboard")
    .then(renderLeaderboard)
    .catch(() => renderLeaderboard(null));
}

const FOCUS = {
  moves: () => document.querySelector('#moves button[data-move="rock"]'),
  end: () => $("winner"),
  picker: () => $("picker-title"),
  name: () => $("player-name")
};

function run(effect) {
  switch (effect.type) {
    case "send":
      connection.send(effect.msg);
      break;
    case "save":
      storage.saveGame(effect.game);
      break;
    case "round":
      storage.rememberRound(effect.gameId, effect.next);
      valuesCache.set(`${effect.gameId}:${effect.next.round}`, effect.next.values);
      break;
    case "savePlayer":
      storage.savePlayerName(effect.name);
      break;
    case "refresh":
      refresh();
      break;
    case "resumeLater":
      setTimeout(() => dispatch({ type: "resumeAgain", gameId: effect.gameId }), RESUME_RETRY_MS);
      break;
    case "focus":
      requestAnimationFrame(() => FOCUS[effect.target]().focus());
      break;
    default:
      break;
  }
}

function dispatch(event) {
  const [next, effects] = step(state, event);
  state = next;
  effects.forEach(run);
  render();
}

function render() {
  renderConnection(state, Date.now());
  renderNotice(state);
  renderPicker(state, stats, (opponent) => dispatch({ type: "start", opponent, name: $("player-name").value, key: storage.playerKey() }));
  renderBoard(state, shortcuts);
  renderEndCard(state);
  renderResult(state, verify);
  renderInsight(state, knownValues);
  renderHistory(state, { values, verify, select: (round) => dispatch({ type: "select", round }) });
}

/** Delete this browser's key's history on the server, then drop the key. */
async function forgetMe() {
  const key = storage.playerKey();
  try {
    const r = await fetch(`/api/players/${encodeURIComponent(key)}`, { method: "DELETE", headers: { Accept: "application/json" } });
    if (!r.ok) {
      throw new Error(`HTTP ${r.status}`);
    }
    storage.dropPlayerKey();
    dispatch({ type: "forgotten", ok: true });
  } catch {
    dispatch({ type: "forgotten", ok: false });
  }
}

function leave() {
  if (needsConfirmToLeave(state)) {
    $("leave-dialog").showModal();
  } else {
    dispatch({ type: "leave" });
  }
}

function onKey(e) {
  if (!shortcuts || e.ctrlKey || e.metaKey || e.altKey || e.repeat || !state.game) {
    return;
  }
  const t = e.target;
  if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable || t.closest("dialog"))) {
    return;
  }
  const move = KEY_MOVES[String(e.key).toLowerCase()];
  if (move) {
    e.preventDefault();
    dispatch({ type: "move", move });
  }
}

function init() {
  $("player-name").value = storage.playerName();
  $("player-name").addEventListener("input", (e) => dispatch({ type: "nameInput", name: e.target.value }));
  for (const b of document.querySelectorAll("#moves button[data-move]")) {
    b.addEventListener("click", () => dispatch({ type: "move", move: b.dataset.move }));
  }
  document.addEventListener("keydown", onKey);
  $("shortcuts").addEventListener("change", (e) => {
    shortcuts = e.target.checked;
    storage.saveShortcuts(shortcuts);
  });
  $("play-again").addEventListener("click", () => {
    const opponent = (state.game && state.game.opponent) || state.lastOpponent;
    dispatch(opponent ? { type: "start", opponent, name: $("player-name").value, key: storage.playerKey() } : { type: "leave" });
  });
  $("change-opponent").addEventListener("click", () => dispatch({ type: "leave" }));
  $("forget-me").addEventListener("click", forgetMe);
  $("leave-game").addEventListener("click", leave);
  $("leave-dialog").addEventListener("close", () => {
    if ($("leave-dialog").returnValue === "leave") {
      dispatch({ type: "leave" });
    } else {
      $("leave-game").focus();
    }
  });
  $("toast-close").addEventListener("click", () => {
    $("toast").hidden = true;
  });
  $("retry-now").addEventListener("click", () => connection.retryNow());
  setInterval(() => {
    if (state.conn !== "online") {
      renderConnection(state, Date.now());
    }
  }, 250);
  render();
  refresh();
  connection.connect();
}

init();
