/* The /models page's arithmetic (pure): the promotion ledger cut into tests, and the e-value chart's geometry. */

/** Decisions that end a test and start the next one (docs/promotion.md); `continue` and `pause` are looks. */
export const TERMINAL = Object.freeze(new Set(["start", "promote", "reject", "rollback", "confirm"]));

/** A ledger row's finished games on both arms (the test's progress). */
export function gamesOf(row) {
  const d = row.details || {};
  return (Number(d.production_games) || 0) + (Number(d.b_games) || 0);
}

/**
 * The latest test of a family's ledger (`rows` newest first, as /api/promotions sends them), oldest look first:
 * the looks since the last decision that ended a test, or, when the last row itself ended one, that test
 * with its final look. `running` says whether it is still going.
 */
export function latestTest(rows) {
  const list = Array.isArray(rows) ? rows : [];
  if (!list.length) {
    return { rows: [], running: false };
  }
  const running = !TERMINAL.has(list[0].decision);
  const out = [];
  for (const [i, row] of list.entries()) {
    if (TERMINAL.has(row.decision) && (running || i > 0)) {
      break;
    }
    out.push(row);
  }
  return { rows: out.reverse(), running };
}

/** A positive, finite e-value, or null (a missing one, or the JSON of an infinite one). */
export function eValue(x) {
  const n = Number(x);
  return Number.isFinite(n) && n > 0 ? n : null;
}

/**
 * The chart of a test's e-values against the boundary: lines of points in a `width` x `height` box (x: finished
 * games, y: log scale), the boundary's y, and the axis ticks. Null when there is nothing to draw.
 */
export function chart(rows, threshold, width, height, pad = { left: 48, right: 12, top: 12, bottom: 34 }) {
  const boundary = eValue(threshold);
  const looks = rows.filter((r) => eValue(r.details?.e_better) !== null || eValue(r.details?.e_futile) !== null);
  if (!looks.length || boundary === null) {
    return null;
  }
  const values = looks.flatMap((r) => [eValue(r.details.e_better), eValue(r.details.e_futile)]).filter((v) => v);
  const lo = Math.floor(Math.log10(Math.min(0.1, ...values)));
  const hi = Math.ceil(Math.log10(Math.max(boundary * 2, ...values)));
  const maxGames = Math.max(1, ...looks.map(gamesOf));
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const x = (games) => pad.left + (games / maxGames) * plotW;
  const y = (e) => pad.top + ((hi - Math.log10(e)) / (hi - lo)) * plotH;
  const line = (key) =>
    looks
      .filter((r) => eValue(r.details[key]) !== null)
      .map((r) => ({ x: x(gamesOf(r)), y: y(eValue(r.details[key])), row: r, value: eValue(r.details[key]) }));
  const yTicks = [];
  for (let p = lo; p <= hi; p++) {
    yTicks.push({ y: y(10 ** p), label: p >= 0 ? String(10 ** p) : (10 ** p).toFixed(-p) });
  }
  const xTicks = [0, 0.5, 1].map((f) => ({ x: x(f * maxGames), label: String(Math.round(f * maxGames)) }));
  return {
    better: line("e_better"),
    futile: line("e_futile"),
    boundary: y(boundary),
    plot: { left: pad.left, right: width - pad.right, top: pad.top, bottom: height - pad.bottom },
    yTicks,
    xTicks
  };
}

/** An e-value for a table ("3.2", "0.041", "≥ 1e6"); "–" when missing. */
export function showE(x) {
  const n = eValue(x);
  if (n === null) {
    return x === null || x === undefined ? "–" : "∞";
  }
  if (n >= 1e6) {
    return "≥ 1e6";
  }
  return n >= 10 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toPrecision(2);
}

/** "12 of 30 (40 %)": bot wins of finished games on an arm. */
export function armText(wins, games) {
  const g = Number(games) || 0;
  const w = Number(wins) || 0;
  return g ? `${w} of ${g} (${Math.round((w / g) * 100)} %)` : "no games";
}
