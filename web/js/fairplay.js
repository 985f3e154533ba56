/* Fair play (game.md): round values and commitments, recomputed from SHA-256.
 *
 * Pure given a digest function `sha(text) -> Promise<hex>`; `digest` is the browser's
 * (crypto.subtle where the context is secure, the small pure-JS one otherwise).
 */
import { sha256Hex } from "./sha256.js";

/** The values of rock, paper, scissors from the two hashes of game.md "Round values". */
export function valuesFromHashes(lowHex, baseHex) {
  const low = parseInt(lowHex.slice(0, 4), 16) % 3;
  const base = [11, 12, 13, 14, 15][parseInt(baseHex.slice(0, 4), 16) % 5];
  const tenths = [0, 0, 0];
  tenths[low] = 10;
  tenths[(low + 2) % 3] = base + 5; // the move the low move beats: the high move
  tenths[(low + 1) % 3] = base; // the move that beats the low move: the middle move
  return { rock: tenths[0] / 10, paper: tenths[1] / 10, scissors: tenths[2] / 10 };
}

export async function roundValues(gameId, round, sha) {
  const prefix = `${gameId}:${round}:`;
  const [low, base] = await Promise.all([sha(prefix + "low"), sha(prefix + "base")]);
  return valuesFromHashes(low, base);
}

/**
 * "ok" when the revealed move and nonce hash to `commit`, "bad" when they do not,
 * "unknown" when the commitment was never seen (or the result carries no nonce).
 */
export async function verifyRound(gameId, result, commit, sha) {
  if (!commit || typeof result.nonce !== "string") {
    return "unknown";
  }
  const digestHex = await sha(`${gameId}:${result.round}:${result.bot_move}:${result.nonce}`);
  return digestHex === String(commit).toLowerCase() ? "ok" : "bad";
}

function toHex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 hex of a UTF-8 string: crypto.subtle when offered, the pure-JS one otherwise. */
export async function digest(text) {
  const subtle = globalThis.isSecureContext !== false && globalThis.crypto && globalThis.crypto.subtle;
  if (subtle) {
    try {
      return toHex(await subtle.digest("SHA-256", new TextEncoder().encode(text)));
    } catch {
      /* fall through to the pure-JS digest */
    }
  }
  return sha256Hex(text);
}
