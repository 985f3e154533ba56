/* The session state machine: pure. `step(state, event)` returns the next state and the
 * effects to carry out (send a message, store the game, move the focus...). No DOM, no
 * timers, no sockets: main.js feeds it events from the network and the player, and
 * carries out the effects.
 *
 * Events: {type: "connecting"} | {type: "offline", retryAt} | {type: "message", msg}
 *   | {type: "start", opponent, name, key} | {type: "move", move} | {type: "leave"}
 *   | {type: "select", round} | {type: "resumeAgain", gameId} | {type: "nameInput", name}
 *   | {type: "forgotten", ok}
 * Effects: {type: "send", msg} | {type: "save", game} | {type: "round", gameId, next}
 *   | {type: "savePlayer", name} | {type: "refresh"} | {type: "resumeLater", gameId}
 *   | {type: "focus", target: "moves" | "end" | "picker" | "name"}
 */
import { MOVES } from "./format.js";

export const FORGOTTEN = "Done: the bots have forgotten your past games.";
const NOT_FORGOTTEN = "The server could not forget you just now: try again later.";
const NAME_RE = /^[\p{L}\p{Nd} _-]{1,24}$/u; // the server's rule: Unicode letters, decimal digits

/** The player's name as the server will accept it: {ok, name} (null for no name) or {ok: false, error}. */
export function validateName(raw) {
  const name = String(raw || "")
    .trim()
    .normalize("NFC");
  if (name === "") {
    return { ok: true, name: null };
  }
  if (Array.from(name).length > 24) {
    return { ok: false, error: "Your name can have at most 24 characters." };
  }
  if (!NAME_RE.test(name)) {
    return { ok: false, error: "Use only letters, digits, spaces, _ or - in your name." };
  }
  return { ok: true, name };
}

/** A fresh session; `saved` is the stored game to resume once connected. */
export function initialState(saved = null) {
  return {
    conn: "connecting", // "connecting" | "online" | "offline"
    retryAt: null, // when offline: the time (ms) of the next attempt
    wasOffline: false, // the connection dropped since it was last up
    opponents: [],
    saved, // {game_id, token, opponent} of the game to resume
    game: null, // {game_id, opponent, target, score, over, winner, next, history}
    pendingStart: null, // opponent id of the start in flight
    pendingMove: null, // {round, move} in flight
    resuming: null, // game id of the resume in flight
    selected: null, // history round whose insight is shown (null: the latest)
    lastOpponent: null,
    nameError: null,
    notice: null // {id, text}: a message for the player
  };
}

/** Whether the move buttons take a move now. */
export function canMove(state) {
  const g = state.game;
  return Boolean(g && !g.over && g.next && !state.pendingMove && !state.resuming && state.conn === "online");
}

/** Leaving throws an unfinished game away: ask first. */
export function needsConfirmToLeave(state) {
  return Boolean(state.game && !state.game.over);
}

/** The history entry whose insight is shown: the selected round, else the latest. */
export function shownResult(state) {
  const history = state.game ? state.game.history : [];
  if (state.selected !== null) {
    const picked = history.find((r) => r.round === state.selected);
    if (picked) {
      return picked;
    }
  }
  return history.length ? history[history.length - 1] : null;
}

function notice(state, text) {
  return { ...state, notice: { id: (state.notice ? state.notice.id : 0) + 1, text: String(text) } };
}

function resume(state, saved) {
  return [{ ...state, resuming: saved.game_id }, [{ type: "send", msg: { type: "resume", game_id: saved.game_id, token: saved.token } }]];
}

function onWelcome(state, msg) {
  const next = { ...state, conn: "online", retryAt: null, wasOffline: false, opponents: Array.isArray(msg.opponents) ? msg.opponents : [] };
  return next.saved ? resume(next, next.saved) : [next, []];
}

function onGame(state, msg) {
  const started = typeof msg.token === "string" && msg.token !== "";
  let next = state;
  const effects = [];
  if (started) {
    if (state.pendingStart === null) {
      return [state, []]; // not ours to show
    }
    const saved = { game_id: msg.game_id, token: msg.token, opponent: msg.opponent };
    next = { ...next, pendingStart: null, saved };
    effects.push({ type: "save", game: saved });
  } else {
    if (!state.saved || state.saved.game_id !== msg.game_id) {
      return [state, []];
    }
    next = { ...next, resuming: null };
  }
  const history = (Array.isArray(msg.history) ? msg.history.slice() : []).sort((a, b) => a.round - b.round);
  const game = {
    game_id: msg.game_id,
    opponent: msg.opponent,
    target: typeof msg.target === "number" ? msg.target : 10,
    score: msg.score || { player: 0, bot: 0 },
    over: Boolean(msg.over),
    winner: msg.winner || null,
    next: msg.next || null,
    history,
    remembered: typeof msg.remembered === "number" ? msg.remembered : null // past games the bot starts from
  };
  if (game.next) {
    effects.push({ type: "round", gameId: game.game_id, next: game.next });
  }
  const wasShown = state.game && state.game.game_id === game.game_id;
  if (!wasShown) {
    effects.push({ type: "focus", target: game.over ? "end" : "moves" });
  }
  return [{ ...next, game, pendingMove: null, selected: null, lastOpponent: msg.opponent }, effects];
}

function onResult(state, msg) {
  const game = state.game;
  if (!game || msg.game_id !== game.game_id) {
    return [state, []];
  }
  let next = state;
  if (state.pendingMove && state.pendingMove.round === msg.round) {
    next = { ...next, pendingMove: null };
  }
  if (game.history.some((r) => r.round === msg.round)) {
    return [next, []]; // a replay of a stored result (safe retry)
  }
  if (msg.round !== game.history.length + 1) {
    return next.saved && !next.resuming ? resume(next, next.saved) : [next, []]; // out of step: resync
  }
  const played = {
    ...game,
    history: [...game.history, msg],
    score: msg.score || game.score,
    over: Boolean(msg.over),
    winner: msg.winner || null,
    next: msg.next || null
  };
  const effects = [];
  if (played.next) {
    effects.push({ type: "round", gameId: game.game_id, next: played.next });
  }
  if (played.over) {
    effects.push({ type: "refresh" }, { type: "focus", target: "end" });
  }
  return [{ ...next, game: played, selected: null }, effects];
}

function onError(state, msg) {
  const code = String(msg.code || "error");
  const message = String(msg.message || code);
  const forResume = state.resuming !== null && (!msg.game_id || msg.game_id === state.resuming);
  if (forResume && (code === "unknown_game" || code === "bad_token")) {
    const next = { ...state, resuming: null, saved: null, game: null, pendingMove: null };
    return [
      notice(next, `Your previous game could not be resumed (${message}). Pick an opponent to play again.`),
      [{ type: "save", game: null }, { type: "focus", target: "picker" }]
    ];
  }
  if (forResume) {
    // The server could not answer the resume right now: try again shortly.
    return [notice({ ...state, resuming: null }, `${message} — retrying…`), [{ type: "resumeLater", gameId: state.resuming }]];
  }
  if (state.pendingStart !== null && !msg.game_id) {
    const next = { ...state, pendingStart: null, nameError: code === "bad_message" ? message : state.nameError };
    return [notice(next, message), []];
  }
  if (msg.game_id && state.game && msg.game_id === state.game.game_id) {
    const next = { ...state, pendingMove: null };
    if ((code === "wrong_round" || code === "game_over" || code === "not_yours") && next.saved) {
      return next.saved.game_id === msg.game_id ? resume(next, next.saved) : [next, []]; // out of step
    }
    return [notice(next, message), []];
  }
  const next = state.pendingMove && !msg.game_id ? { ...state, pendingMove: null } : state;
  return [notice(next, message), []];
}

function onMessage(state, msg) {
  switch (msg && msg.type) {
    case "welcome":
      return onWelcome(state, msg);
    case "game":
      return onGame(state, msg);
    case "result":
      return onResult(state, msg);
    case "error":
      return onError(state, msg);
    default:
      return [state, []];
  }
}

function offlineText(state) {
  return state.conn === "offline" ? "You are offline, so nothing was sent. Reconnecting…" : "Still connecting to the server…";
}

function start(state, opponent, rawName, key) {
  const check = validateName(rawName);
  if (!check.ok) {
    return [{ ...state, nameError: check.error }, [{ type: "focus", target: "name" }]];
  }
  const next = { ...state, nameError: null };
  if (state.conn !== "online") {
    return [notice(next, offlineText(state)), []];
  }
  if (state.pendingStart !== null) {
    return [next, []];
  }
  const msg = { type: "start", opponent };
  if (check.name) {
    msg.player = check.name;
  }
  if (key) {
    msg.key = key;
  }
  return [
    { ...next, pendingStart: opponent, lastOpponent: opponent },
    [{ type: "savePlayer", name: check.name || "" }, { type: "send", msg }]
  ];
}

function move(state, choice) {
  const g = state.game;
  if (!g || g.over || !g.next || !MOVES.includes(choice) || state.pendingMove) {
    return [state, []];
  }
  if (state.conn !== "online" || state.resuming) {
    return [notice(state, offlineText(state)), []];
  }
  const round = g.next.round;
  return [
    { ...state, pendingMove: { round, move: choice } },
    [{ type: "send", msg: { type: "move", game_id: g.game_id, round, move: choice } }]
  ];
}

/** One step of the session: [next state, effects]. */
export function step(state, event) {
  switch (event.type) {
    case "connecting":
      return [{ ...state, conn: "connecting", retryAt: null }, []];
    case "offline":
      return [{ ...state, conn: "offline", retryAt: event.retryAt, wasOffline: true, pendingStart: null, pendingMove: null, resuming: null }, []];
    case "message":
      return onMessage(state, event.msg);
    case "start":
      return start(state, event.opponent, event.name, event.key);
    case "move":
      return move(state, event.move);
    case "leave":
      return [
        { ...state, game: null, saved: null, pendingMove: null, resuming: null, selected: null },
        [{ type: "save", game: null }, { type: "focus", target: "picker" }]
      ];
    case "select":
      return [{ ...state, selected: state.selected === event.round ? null : event.round }, []];
    case "resumeAgain":
      return state.saved && state.saved.game_id === event.gameId && state.conn === "online" && !state.resuming
        ? resume(state, state.saved)
        : [state, []];
    case "forgotten":
      return event.ok
        ? [notice(state.game ? { ...state, game: { ...state.game, remembered: null } } : state, FORGOTTEN), []]
        : [notice(state, NOT_FORGOTTEN), []];
    case "nameInput": {
      const check = validateName(event.name);
      return [{ ...state, nameError: check.ok ? null : check.error }, []];
    }
    default:
      return [state, []];
  }
}
