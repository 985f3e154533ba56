/* A returning player: a random key this browser keeps (no login, no personal data). With it the
 * bot starts from this player's own past games; the player can make it forget them.
 */

const KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"; // 64: no modulo bias
const KEY_RE = /^[A-Za-z0-9_-]{16,64}$/; // the server's rule
export const KEY_LENGTH = 32;

/** A fresh random key of KEY_LENGTH URL-safe characters; `fill` is crypto.getRandomValues. */
export function newPlayerKey(fill = (a) => globalThis.crypto.getRandomValues(a)) {
  const bytes = fill(new Uint8Array(KEY_LENGTH));
  return Array.from(bytes, (b) => KEY_CHARS[b & 63]).join("");
}

export function validKey(key) {
  return typeof key === "string" && KEY_RE.test(key);
}

/** What the page says about the bot's memory of this player ("" when the game has no key). */
export function memoryText(name, remembered) {
  if (typeof remembered !== "number") {
    return "";
  }
  if (remembered === 0) {
    return `${name} has not played you before.`;
  }
  return `${name} remembers ${remembered} ${remembered === 1 ? "game" : "games"} with you.`;
}
