/* The read-only /models page: per family the aliases with their versions and live figures (GET /api/models),
 * the latest promotion test's e-values against its boundary as plain SVG, and the ledger (GET /api/promotions).
 * Refreshed every REFRESH_MS. Text from the server only reaches the page through textContent.
 */
import { $, el } from "./render/dom.js";
import { FAMILY_LABEL, pct } from "./format.js";
import { armText, chart, latestTest, showE } from "./lifecycle.js";

const REFRESH_MS = 15000;
const LEDGER_ROWS = 20; // shown per family (the chart reads up to 1,000)
const ALIASES = ["Production", "B", "shadow1", "shadow2"];
const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 640, height: 260 };

async function getJson(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  return response.json();
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    node.setAttribute(k, String(v));
  }
  if (text !== undefined) {
    node.textContent = String(text);
  }
  return node;
}

function table(caption, head, rows, className) {
  const t = el("table", `ops-table ${className || ""}`.trim());
  t.append(el("caption", "visually-hidden", caption));
  const tr = el("tr");
  for (const h of head) {
    const th = el("th", null, h);
    th.scope = "col";
    tr.append(th);
  }
  const thead = el("thead");
  thead.append(tr);
  const tbody = el("tbody");
  for (const cells of rows) {
    const row = el("tr");
    cells.forEach((c, i) => {
      if (i === 0) {
        const th = el("th", null, c);
        th.scope = "row";
        row.append(th);
      } else {
        row.append(el("td", null, c));
      }
    });
    tbody.append(row);
  }
  t.append(thead, tbody);
  const wrap = el("div", "table-scroll");
  wrap.tabIndex = 0; // scrollable on narrow screens: reachable by keyboard
  wrap.setAttribute("role", "region");
  wrap.setAttribute("aria-label", caption);
  wrap.append(t);
  return wrap;
}

function aliasTable(family, aliases) {
  const rows = ALIASES.filter((a) => aliases[a]).map((alias) => {
    const a = aliases[alias];
    const live = a.live || {};
    const valid = a.metrics?.valid?.log_loss;
    return [
      alias,
      a.version,
      String(live.rounds ?? 0),
      live.accuracy === null || live.accuracy === undefined ? "–" : pct(live.accuracy),
      String(live.games ?? 0),
      live.bot_win_rate === null || live.bot_win_rate === undefined ? "–" : pct(live.bot_win_rate),
      Number.isFinite(Number(valid)) ? Number(valid).toFixed(3) : "–"
    ];
  });
  return table(
    `${family}: aliases and live figures`,
    ["alias", "version", "rounds predicted", "top-1 accuracy", "games served", "bot win rate", "validation log loss"],
    rows,
    "ops-aliases"
  );
}

function drawChart(family, test) {
  const last = test.rows[test.rows.length - 1];
  const threshold = last?.details?.threshold;
  const geometry = chart(test.rows, threshold, CHART.width, CHART.height);
  if (!geometry) {
    return el("p", "muted", "No look at a test yet: the next promotion run makes the first.");
  }
  const titleId = `chart-title-${family}`;
  const descId = `chart-desc-${family}`;
  const root = svg("svg", {
    viewBox: `0 0 ${CHART.width} ${CHART.height}`,
    class: "ops-chart",
    role: "img",
    "aria-labelledby": `${titleId} ${descId}`
  });
  const d = last.details;
  root.append(
    svg("title", { id: titleId }, `${family}: e-values of the ${test.running ? "running" : "last"} test`),
    svg(
      "desc",
      { id: descId },
      `${test.rows.length} looks; at the last, ${d.production_games} and ${d.b_games} finished games,` +
        ` e-value for B better ${showE(d.e_better)}, for B not better by the margin ${showE(d.e_futile)};` +
        ` the test decides at ${showE(threshold)}.`
    )
  );
  const p = geometry.plot;
  for (const t of geometry.yTicks) {
    root.append(svg("line", { x1: p.left, x2: p.right, y1: t.y, y2: t.y, class: "ops-grid" }));
    root.append(svg("text", { x: p.left - 6, y: t.y + 4, class: "ops-tick ops-tick-y" }, t.label));
  }
  for (const t of geometry.xTicks) {
    root.append(svg("text", { x: t.x, y: p.bottom + 16, class: "ops-tick ops-tick-x" }, t.label));
  }
  root.append(
    svg("text", { x: (p.left + p.right) / 2, y: p.bottom + 30, class: "ops-axis" }, "finished games, both arms"),
    svg("line", { x1: p.left, x2: p.right, y1: geometry.boundary, y2: geometry.boundary, class: "ops-boundary" }),
    svg("text", { x: p.right - 4, y: geometry.boundary - 5, class: "ops-boundary-label" }, `decide at ${showE(threshold)}`)
  );
  for (const [key, label] of [
    ["better", "B better"],
    ["futile", "B not better by the margin"]
  ]) {
    const points = geometry[key];
    if (points.length > 1) {
      root.append(svg("polyline", { points: points.map((q) => `${q.x},${q.y}`).join(" "), class: `ops-line ops-${key}` }));
    }
    for (const q of points) {
      const dot = svg("circle", { cx: q.x, cy: q.y, r: 3.5, class: `ops-dot ops-${key}` });
      const when = new Date(q.row.created * 1000).toLocaleString();
      dot.append(svg("title", {}, `${label}: e = ${showE(q.value)} (${q.row.decision}, ${when})`));
      root.append(dot);
    }
  }
  const legend = el("ul", "ops-legend");
  legend.append(
    el("li", "ops-key-better", "B better: promote when it reaches the line"),
    el("li", "ops-key-futile", "B not better by the margin: reject when it reaches the line"),
    el("li", "ops-key-boundary", "the boundary, 1/alpha")
  );
  const figure = el("figure", "ops-figure");
  figure.append(root, legend);
  return figure;
}

function testSummary(test) {
  const last = test.rows[test.rows.length - 1];
  if (!last) {
    return "No promotion decision yet.";
  }
  const d = last.details || {};
  const arms = `Production ${armText(d.production_wins, d.production_games)}, B ${armText(d.b_wins, d.b_games)} won by the bot`;
  const reason = d.reason ? ` ${String(d.reason).replace(/\.?$/, ".")}` : "";
  if (test.running) {
    return `Running test: ${arms}.${reason}`;
  }
  return `The last test ended with "${last.decision}": ${arms}.${reason} A new test has started: its first look comes with the next promotion run.`;
}

function ledgerTable(family, rows) {
  const body = rows.slice(0, LEDGER_ROWS).map((r) => {
    const d = r.details || {};
    const change = r.alias ? `${r.alias}: ${r.from_version ?? "–"} → ${r.to_version ?? "–"}` : "–";
    const srm = Number.isFinite(Number(d.srm_p)) && d.srm_p !== null ? Number(d.srm_p).toPrecision(2) : "–";
    return [
      new Date(r.created * 1000).toLocaleString(),
      r.decision,
      change,
      armText(d.production_wins, d.production_games),
      armText(d.b_wins, d.b_games),
      showE(d.e_better),
      showE(d.e_futile),
      srm
    ];
  });
  return table(
    `${family}: promotion ledger, newest first`,
    ["when", "decision", "change", "Production (bot wins)", "B (bot wins)", "e: B better", "e: B not better", "SRM p"],
    body,
    "ops-ledger"
  );
}

function familySection(family, opponent, aliases, ledger) {
  const section = el("section", "panel ops-family");
  const headingId = `family-${family}`;
  section.setAttribute("aria-labelledby", headingId);
  section.dataset.family = family;
  const heading = el("h2", null, `${opponent ? opponent.name + ": " : ""}${FAMILY_LABEL[family] || family}`);
  heading.id = headingId;
  const test = latestTest(ledger);
  section.append(heading, el("h3", null, "Aliases"), aliasTable(family, aliases));
  section.append(el("h3", null, "Promotion test"), el("p", "ops-summary", testSummary(test)), drawChart(family, test));
  section.append(el("h3", null, "Ledger"));
  section.append(ledger.length ? ledgerTable(family, ledger) : el("p", "muted", "The ledger is empty."));
  if (ledger.length > LEDGER_ROWS) {
    section.append(el("p", "muted small", `The ${LEDGER_ROWS} newest of ${ledger.length} rows shown.`));
  }
  return section;
}

async function refresh() {
  const box = $("families");
  try {
    const [models, opponents] = await Promise.all([getJson("/api/models"), getJson("/api/opponents")]);
    const families = Object.keys(models.families || {});
    const ledgers = await Promise.all(
      families.map((f) => getJson(`/api/promotions?family=${encodeURIComponent(f)}&limit=1000`))
    );
    const byFamily = Object.fromEntries((opponents.opponents || []).map((o) => [o.family, o]));
    box.replaceChildren(
      ...families.map((f, i) => familySection(f, byFamily[f], models.families[f] || {}, ledgers[i].promotions || []))
    );
    $("updated").textContent = `Manifest generation ${models.generation}; updated ${new Date().toLocaleTimeString()}.`;
  } catch (error) {
    $("updated").textContent = `Not updated: ${error.message}. Trying again in ${REFRESH_MS / 1000} s.`;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
