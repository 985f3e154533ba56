import assert from "node:assert/strict";
import { test } from "node:test";

import { armText, chart, latestTest, showE } from "../../web/js/lifecycle.js";

const row = (decision, e_better, e_futile, games, extra = {}) => ({
  decision,
  created: 1_800_000_000,
  details: { e_better, e_futile, threshold: 20, production_games: games, b_games: games, ...extra }
});

test("the running test is the looks since the last decision that ended one, oldest first", () => {
  const ledger = [row("continue", 4, 0.5, 30), row("continue", 2, 0.8, 20), row("reject", 0.1, 25, 300), row("continue", 1, 1, 10)];
  const t = latestTest(ledger);
  assert.equal(t.running, true);
  assert.deepEqual(t.rows.map((r) => r.details.production_games), [20, 30]);
});

test("when the last decision ended a test, that test is shown with its final look", () => {
  const ledger = [row("promote", 21, 0.1, 200), row("continue", 9, 0.2, 150), row("start", 1, 1, 0), row("continue", 1, 1, 0)];
  const t = latestTest(ledger);
  assert.equal(t.running, false);
  assert.deepEqual(t.rows.map((r) => r.decision), ["continue", "promote"]);
  assert.deepEqual(latestTest([]), { rows: [], running: false });
  assert.deepEqual(latestTest(undefined), { rows: [], running: false });
});

test("the chart puts games on x and e-values on a log scale, with the boundary between its ticks", () => {
  const g = chart([row("continue", 1, 1, 0), row("continue", 10, 0.1, 50)], 20, 640, 260);
  const p = g.plot;
  assert.equal(g.better[0].x, p.left);
  assert.equal(g.better[1].x, p.right); // the most games is the right edge
  assert.ok(g.better[1].y < g.better[0].y && g.futile[1].y > g.futile[0].y); // up is larger
  const ten = g.yTicks.find((t) => t.label === "10").y;
  const hundred = g.yTicks.find((t) => t.label === "100").y;
  assert.ok(g.boundary < ten && g.boundary > hundred);
  assert.equal(g.yTicks[0].y, p.bottom);
  assert.equal(g.yTicks.at(-1).y, p.top);
  assert.deepEqual(g.xTicks.map((t) => t.label), ["0", "50", "100"]);
});

test("nothing to draw without e-values or a boundary; a missing e-value leaves its point out", () => {
  assert.equal(chart([], 20, 640, 260), null);
  assert.equal(chart([row("continue", 2, 2, 10)], null, 640, 260), null);
  const g = chart([row("continue", null, 2, 10), row("continue", 3, 2, 20)], 20, 640, 260);
  assert.equal(g.better.length, 1);
  assert.equal(g.futile.length, 2);
});

test("numbers in the tables", () => {
  assert.equal(showE(3.14159), "3.14");
  assert.equal(showE(25.4), "25");
  assert.equal(showE(0.012345), "0.012");
  assert.equal(showE(null), "–");
  assert.equal(showE(5e9), "≥ 1e6");
  assert.equal(armText(12, 30), "12 of 30 (40 %)");
  assert.equal(armText(0, 0), "no games");
});
