/* What the browser keeps between visits: the game to resume, each round's commitment and
 * values, the player's name and settings. localStorage when it works, memory otherwise
 * (private mode, quota): the game still plays, only without resume after a reload.
 */
import { newPlayerKey, validKey } from "./memory.js";

const KEY_GAME = "rpsquest.game";
const KEY_ROUNDS = "rpsquest.rounds";
const KEY_PLAYER = "rpsquest.player";
const KEY_SHORTCUTS = "rpsquest.shortcuts";
const KEY_PLAYER_KEY = "rpsquest.key";
const MAX_STORED_GAMES = 12;

export class Storage {
  constructor(backend = globalThis.localStorage) {
    this.backend = backend;
    this.memory = new Map();
  }

  get(key) {
    try {
      const raw = this.backend.getItem(key);
      if (raw !== null) {
        return JSON.parse(raw);
      }
    } catch {
      /* unavailable or corrupt: the memory copy below */
    }
    return this.memory.has(key) ? this.memory.get(key) : null;
  }

  set(key, value) {
    this.memory.set(key, value);
    try {
      if (value === null) {
        this.backend.removeItem(key);
      } else {
        this.backend.setItem(key, JSON.stringify(value));
      }
    } catch {
      /* kept in memory only */
    }
  }

  /** The game to resume: {game_id, token, opponent} or null. */
  savedGame() {
    const g = this.get(KEY_GAME);
    return g && typeof g.game_id === "string" && typeof g.token === "string" ? g : null;
  }

  saveGame(game) {
    this.set(KEY_GAME, game);
  }

  /** Remember round `next.round` of a game as it opened: its commitment and values. */
  rememberRound(gameId, next) {
    const all = this.get(KEY_ROUNDS) || {};
    const entry = all[gameId] || { t: 0, r: {} };
    entry.t = Date.now();
    entry.r[String(next.round)] = { c: String(next.commit || ""), v: next.values || null };
    all[gameId] = entry;
    const ids = Object.keys(all).sort((a, b) => (all[a].t || 0) - (all[b].t || 0));
    ids.slice(0, Math.max(0, ids.length - MAX_STORED_GAMES)).forEach((id) => delete all[id]);
    this.set(KEY_ROUNDS, all);
  }

  /** {c: commit, v: values} of a round this browser saw open, or null. */
  round(gameId, round) {
    const entry = (this.get(KEY_ROUNDS) || {})[gameId];
    return (entry && entry.r && entry.r[String(round)]) || null;
  }

  playerName() {
    const name = this.get(KEY_PLAYER);
    return typeof name === "string" ? name : "";
  }

  savePlayerName(name) {
    this.set(KEY_PLAYER, name);
  }

  /** This browser's returning-player key (memory.js), made on first use. */
  playerKey() {
    const key = this.get(KEY_PLAYER_KEY);
    if (validKey(key)) {
      return key;
    }
    const fresh = newPlayerKey();
    this.set(KEY_PLAYER_KEY, fresh);
    return fresh;
  }

  /** Drop the key: the next game starts a stranger's. */
  dropPlayerKey() {
    this.set(KEY_PLAYER_KEY, null);
  }

  /** Single-key shortcuts (R, P, S, 1, 2, 3): on unless the player turned them off. */
  shortcuts() {
    return this.get(KEY_SHORTCUTS) !== false;
  }

  saveShortcuts(on) {
    this.set(KEY_SHORTCUTS, Boolean(on));
  }
}
