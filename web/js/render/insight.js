/* "Inside the bot's head" for the shown round: the sentences of ../insight.js and two sets
 * of bars: what the bot expected you to play, and the expected points of each of its moves.
 */
import { FAMILY_LABEL, MOVES, MOVE_LABEL, pct, signed } from "../format.js";
import { explain } from "../insight.js";
import { shownResult } from "../session.js";
import { $, el, opponentName } from "./dom.js";

function bar(label, fraction, valueText, classes) {
  const row = el("div", `bar-row ${classes}`);
  const track = el("span", "bar-track");
  const fill = el("span", "bar-fill");
  fill.style.width = `${Math.max(0, Math.min(100, fraction * 100))}%`;
  track.append(fill);
  row.append(el("span", "bar-label", label), track, el("span", "bar-value", valueText));
  return row;
}

/** A bar around a middle axis: right for a gain, left for a loss; `scale` points fill half. */
function pointsBar(label, value, scale, classes) {
  const row = el("div", `bar-row ev-row ${classes}`);
  const track = el("span", "bar-track ev-track");
  const fill = el("span", `bar-fill ${value < 0 ? "ev-neg" : "ev-pos"}`);
  const half = Math.min(50, (Math.abs(value) / scale) * 50);
  fill.style.width = `${half}%`;
  fill.style.left = value < 0 ? `${50 - half}%` : "50%";
  track.append(el("span", "ev-axis"), fill);
  row.append(el("span", "bar-label", label), track, el("span", "bar-value", signed(value)));
  return row;
}

function sourceText(ins, name) {
  if (ins.source === "opening") {
    return `Rounds 1–3: ${name} plays a scripted opening; the numbers show what its predictor expected anyway.`;
  }
  if (ins.source === "online") {
    return `Prediction from ${name}’s in-game pattern tracker, which learns your habits as you play.`;
  }
  if (ins.source === "model") {
    const family = FAMILY_LABEL[ins.family] || ins.family || "";
    return `Prediction from ${name}’s trained ${family} model blended with its in-game pattern tracker, each weighted by how well it has predicted you so far.`;
  }
  return "";
}

/** The panel's inner markup, built once; the section's data-heading is its title's level (the bars' titles
 * one below), data-who names the player in them ("you", "the player"). */
function buildPanel(box) {
  const level = Number(box.dataset.heading) || 3;
  const title = el(`h${level}`, "insight-heading");
  title.id = "insight-title";
  const column = (heading, ...parts) => {
    const div = el("div");
    div.append(el(`h${level + 1}`, "", heading), ...parts);
    return div;
  };
  const withId = (tag, className, id) => {
    const node = el(tag, className);
    node.id = id;
    return node;
  };
  const grid = el("div", "insight-grid");
  grid.append(
    column(`What it expected ${box.dataset.who || "you"} to play`, withId("div", "bars", "insight-probs")),
    column(
      "Its expected points this round",
      withId("p", "small muted", "points-caption"),
      withId("div", "bars", "insight-points")
    )
  );
  box.replaceChildren(title, withId("p", "insight-text", "insight-text"), grid,
    withId("p", "insight-source muted", "insight-source"));
}

export function renderInsight(state, valuesFor) {
  const box = $("insight");
  if (!box.firstChild) {
    buildPanel(box);
  }
  const result = state.game ? shownResult(state) : null;
  const values = result && result.insight ? valuesFor(state.game.game_id, result.round) : null;
  if (!values) {
    box.hidden = true;
    return;
  }
  const ins = result.insight;
  const name = opponentName(state, state.game.opponent);
  const out = explain(result, values, state.game.target, name);
  $("insight-title").textContent = `Inside ${name}’s head · round ${result.round}`;
  $("insight-text").textContent = out.sentences.join(" ");
  const probs = ins.probs || {};
  $("insight-probs").replaceChildren(
    ...MOVES.map((m) =>
      bar(
        MOVE_LABEL[m] + (m === result.player_move ? " (you)" : ""),
        Number(probs[m]) || 0,
        pct(probs[m] || 0),
        `${m === out.expected ? "is-top" : ""} ${m === result.player_move ? "is-yours" : ""}`
      )
    )
  );
  $("points-caption").textContent = `For each move ${name} could play: its expected points minus yours. The round’s values: ${MOVES.map((m) => `${MOVE_LABEL[m]} ${values[m].toFixed(1)}`).join(", ")}.`;
  const scale = Math.max(1, ...MOVES.map((m) => Math.abs(out.points[m])));
  $("insight-points").replaceChildren(
    ...MOVES.map((m) =>
      pointsBar(
        MOVE_LABEL[m] + (m === result.bot_move ? " (played)" : ""),
        out.points[m],
        scale,
        `${m === result.bot_move ? "is-chosen" : ""} ${out.best.includes(m) ? "is-best" : ""}`
      )
    )
  );
  $("insight-source").textContent = sourceText(ins, name);
  box.hidden = false;
}
