/* Small DOM helpers. Text from the server only reaches the page through textContent. */

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  return node;
}

export function clear(node) {
  node.replaceChildren();
}

/** The display name of opponent `id` from the welcome's list. */
export function opponentName(state, id) {
  const o = state.opponents.find((x) => x.id === id);
  return (o && o.name) || (id ? id.charAt(0).toUpperCase() + id.slice(1) : "Bot");
}
