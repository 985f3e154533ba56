/* The opponent picker: one card per opponent, its live win rate, the name field's error. */
import { FAMILY_LABEL } from "../format.js";
import { $, el } from "./dom.js";

const FAMILY_BLURB = {
  mlp: "A neural network that looks for patterns in how you play.",
  xgboost: "Decision trees that split your habits into rules.",
  logistic: "A simple, fast statistical model, and surprisingly sharp."
};

let shownOpponents = null;

function statText(s) {
  if (!s) {
    return "";
  }
  if (typeof s.bot_win_rate === "number" && s.games > 0) {
    return `Wins ${Math.round(s.bot_win_rate * 100)} % of ${s.games} ${s.games === 1 ? "game" : "games"} against people`;
  }
  return "No games against people yet";
}

function cards(state, onPick) {
  const box = $("opponents");
  if (!state.opponents.length) {
    box.replaceChildren(el("p", "muted placeholder", state.conn === "online" ? "No opponents are available right now." : "Connecting to the server…"));
    return;
  }
  box.replaceChildren(
    ...state.opponents.map((o) => {
      const btn = el("button", `card card-${String(o.family || "other")}`);
      btn.type = "button";
      btn.dataset.opponent = String(o.id);
      const avatar = el("span", "avatar", String(o.name || o.id).charAt(0).toUpperCase());
      avatar.setAttribute("aria-hidden", "true");
      const body = el("span", "card-body");
      body.append(
        el("span", "card-name", o.name || o.id),
        el("span", "card-family", FAMILY_LABEL[o.family] || o.family || ""),
        el("span", "card-blurb", FAMILY_BLURB[o.family] || "")
      );
      const stat = el("span", "card-stat");
      stat.dataset.statFor = String(o.id);
      body.append(stat);
      btn.append(avatar, body, el("span", "card-cta", `Play ${o.name || o.id}`));
      btn.addEventListener("click", () => onPick(String(o.id)));
      return btn;
    })
  );
}

export function renderPicker(state, stats, onPick) {
  $("picker").hidden = state.game !== null;
  if (shownOpponents !== state.opponents || !state.opponents.length) {
    shownOpponents = state.opponents;
    cards(state, onPick);
  }
  const busy = state.pendingStart !== null;
  for (const b of document.querySelectorAll("#opponents button[data-opponent]")) {
    b.setAttribute("aria-disabled", String(busy || state.conn !== "online"));
    b.classList.toggle("is-loading", state.pendingStart === b.dataset.opponent);
  }
  for (const node of document.querySelectorAll("#opponents [data-stat-for]")) {
    node.textContent = statText(stats[node.dataset.statFor]);
  }
  const error = $("name-error");
  error.textContent = state.nameError || "";
  error.hidden = !state.nameError;
  $("player-name").setAttribute("aria-invalid", String(Boolean(state.nameError)));
}
