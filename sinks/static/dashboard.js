// The abstream dashboard: polls the sink's JSON API and redraws in place (no reload, no library).
// Every value from the API reaches the page through textContent or an SVG attribute, never as markup.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("config").textContent);
  const POLL_MS = 5000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#000000"];
  const W = 720, H = 280, M = { left: 58, right: 16, top: 12, bottom: 30 };
  const app = document.getElementById("app");
  const status = document.getElementById("status");
  const policy = new URLSearchParams(window.location.search).get("policy") || config.policy;

  // -- DOM helpers ----------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }

  function swatch(color) {
    const node = el("i", { class: "swatch" });
    node.style.background = color;
    return node;
  }

  function section(id, className) {
    let node = document.getElementById(id);
    if (!node) node = app.appendChild(el("section", { id, class: className || "" }));
    return node;
  }

  // -- formatting -----------------------------------------------------------------------------
  const pct = (x, digits = 2) => (x === null || x === undefined ? "n/a" : (x * 100).toFixed(digits) + "%");
  const signedPct = (x) => (x >= 0 ? "+" : "") + (x * 100).toFixed(1) + "%";
  const count = (n) => (n === null || n === undefined ? "n/a" : String(n));
  function g4(x) {
    if (x === null || x === undefined) return "n/a";
    return x !== 0 && Math.abs(x) < 1e-4 ? x.toExponential(3) : String(Number(x.toPrecision(4)));
  }
  function clock(ms, long) {
    const iso = new Date(ms).toISOString();
    return long ? iso.slice(5, 10) + " " + iso.slice(11, 16) : iso.slice(11, 16);
  }

  // -- charts ---------------------------------------------------------------------------------
  function niceTicks(max, n) {
    const raw = max / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const ticks = [];
    for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(v);
    return ticks;
  }

  const TICK_MINUTES = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080];

  // Ticks at round UTC times, at most 6.
  function timeTicks(x0, x1) {
    const minutes = (x1 - x0) / 60000;
    const step = 60000 * (TICK_MINUTES.find((m) => minutes / m <= 6) || 1440 * Math.ceil(minutes / 1440 / 6));
    const ticks = [];
    for (let t = Math.ceil(x0 / step) * step; t <= x1; t += step) ticks.push(t);
    return ticks;
  }

  function pathOf(points, sx, sy) {
    let d = "", pen = false;
    for (const [x, y] of points) {
      if (y === null || y === undefined) { pen = false; continue; }
      d += (pen ? "L" : "M") + sx(x).toFixed(1) + " " + sy(y).toFixed(1);
      pen = true;
    }
    return d;
  }

  function bandOf(points, sx, sy) {
    const runs = [[]];
    for (const p of points) {
      if (p[1] === null || p[1] === undefined) { if (runs[runs.length - 1].length) runs.push([]); continue; }
      runs[runs.length - 1].push(p);
    }
    return runs.filter((r) => r.length).map((run) => {
      const upper = run.map(([x, , hi]) => sx(x).toFixed(1) + " " + sy(hi).toFixed(1));
      const lower = run.slice().reverse().map(([x, lo]) => sx(x).toFixed(1) + " " + sy(lo).toFixed(1));
      return "M" + upper.join("L") + "L" + lower.join("L") + "Z";
    }).join("");
  }

  // series: [{name, color, points: [[x, y]], band: [[x, lo, hi]] | null, last: text}]
  function drawChart(figure, { x0, x1, yMax, yFormat, series, label }) {
    const svg = figure.querySelector("svg");
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("aria-label", label);
    const sx = (x) => M.left + ((x - x0) / Math.max(1, x1 - x0)) * (W - M.left - M.right);
    const sy = (y) => H - M.bottom - (y / yMax) * (H - M.top - M.bottom);
    for (const t of niceTicks(yMax, 4)) {
      svg.append(svgEl("line", { class: "grid", x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t) }));
      const text = svgEl("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end" });
      text.textContent = yFormat(t);
      svg.append(text);
    }
    const long = x1 - x0 > 36 * 3600 * 1000;
    timeTicks(x0, x1).forEach((x, i) => {
      const anchor = W - sx(x) < 36 ? "end" : "middle";  // the left margin has room for half a label
      const text = svgEl("text", { x: sx(x), y: H - 10, "text-anchor": anchor });
      text.textContent = clock(x, long || i === 0);
      svg.append(text);
    });
    svg.append(svgEl("line", { class: "axis", x1: M.left, x2: W - M.right, y1: sy(0), y2: sy(0) }));
    const clip = svgEl("clipPath", { id: figure.id + "-clip" });
    clip.append(svgEl("rect", { x: M.left, y: M.top - 4, width: W - M.left - M.right + 4, height: H - M.top - M.bottom + 8 }));
    svg.append(clip);
    for (const s of series) {
      const group = svgEl("g", { class: "series", "data-variant": s.name, "clip-path": `url(#${figure.id}-clip)` });
      if (s.band) group.append(svgEl("path", { class: "band", d: bandOf(s.band, sx, sy), fill: s.color }));
      group.append(svgEl("path", { class: "line", d: pathOf(s.points, sx, sy), stroke: s.color }));
      const end = s.points.filter((p) => p[1] !== null && p[1] !== undefined).pop();
      if (end) group.append(svgEl("circle", { cx: sx(end[0]), cy: sy(end[1]), r: 3, fill: s.color }));
      svg.append(group);
    }
    const legend = figure.querySelector(".legend");
    legend.replaceChildren(...series.map((s) => el("span", { class: "legend-item", "data-variant": s.name },
      swatch(s.color), s.name + " ", el("b", { "data-last": "" }, s.last))));
  }

  function figure(id, title, note) {
    let node = document.getElementById(id);
    if (node) return node;
    node = el("figure", { id }, el("figcaption", {}, title + " ", el("small", {}, note)));
    node.append(svgEl("svg", { class: "chart", role: "img" }), el("div", { class: "legend" }));
    section("charts", "charts").append(node);
    return node;
  }

  function drawSeries(series, colors) {
    const names = Object.keys(series.variants);
    const n = series.buckets, start = series.start_ms, step = series.step_ms;
    const end = (i) => start + (i + 1) * step;
    const x1 = n ? end(n - 1) : start + step;
    const exposures = names.map((name) => {
      const v = series.variants[name];
      const points = [[start, 0], ...v.exposed_units.map((y, i) => [end(i), y])];
      return { name, color: colors[name], points, band: null, last: count(v.exposed_units[n - 1] ?? 0) };
    });
    const yUnits = Math.max(1, ...exposures.flatMap((s) => s.points.map((p) => p[1])));
    drawChart(figure("chart-exposures", "Exposed units", "cumulative, every first exposure as logged (no policy); UTC"), {
      x0: start, x1, yMax: yUnits * 1.08, yFormat: (t) => String(Math.round(t)), series: exposures,
      label: "Cumulative exposed units per variant over time",
    });
    const rates = names.map((name) => {
      const v = series.variants[name];
      return {
        name, color: colors[name], points: v.rate.map((y, i) => [end(i), y]),
        band: v.rate.map((y, i) => [end(i), y === null ? null : v.ci_low[i], v.ci_high[i]]),
        last: pct(v.rate[n - 1] ?? null),
      };
    });
    // Scale to the intervals once a variant has some units: the first few units' intervals span everything.
    const settled = (v) => v.ci_high.filter((y, i) => y !== null && v.units[i] >= Math.min(30, v.units[n - 1]));
    const yRate = Math.max(0.01, ...names.flatMap((name) => settled(series.variants[name])));
    drawChart(figure("chart-rate", "Conversion rate", "cumulative, 95% CI, units as the report counts them; UTC"), {
      x0: start, x1, yMax: Math.min(1, yRate * 1.08), yFormat: (t) => pct(t, yRate < 0.05 ? 1 : 0), series: rates,
      label: "Cumulative conversion rate per variant with 95% confidence band",
    });
  }

  // -- the experiment page --------------------------------------------------------------------
  function policyLinks(current) {
    const links = ["exclude", "first_seen"].map((p) => {
      const a = el("a", { href: "?policy=" + encodeURIComponent(p) }, p);
      if (p === current) a.className = "current";
      return a;
    });
    return el("span", {}, "multi-variant units: ", links[0], " | ", links[1]);
  }

  function badgeEl(b, short) {
    return el("span", { class: "badge " + b.level, "data-badge": b.name, "data-level": b.level, title: b.text },
      el("b", {}, b.label), short ? b.short : b.text);
  }

  const COLUMNS = [
    ["Variant", (name) => name], ["Units", (n, v) => count(v.units)],
    ["Converting units", (n, v) => count(v.converting_units)], ["Conversions", (n, v) => count(v.conversions)],
    ["Rate ± 95% CI", (n, v) => (v.rate === null ? "n/a" : pct(v.rate) + " ± " + pct(v.ci_half_width))],
    ["95% CI", (n, v) => (v.rate === null ? "n/a" : "[" + pct(v.ci_low) + ", " + pct(v.ci_high) + "]")],
    ["Lift vs control", (n, v) => (v.is_control ? "control" : v.lift === null ? "n/a"
      : signedPct(v.lift) + " [" + signedPct(v.lift_ci_low) + ", " + signedPct(v.lift_ci_high) + "]")],
    ["p-value", (n, v) => (v.is_control ? "" : g4(v.p_value))],
  ];
  const FIELDS = ["variant", "units", "converting_units", "conversions", "rate", "ci", "lift", "p_value"];

  function reportTable(report, colors) {
    const head = el("tr", {}, ...COLUMNS.map(([title]) => el("th", {}, title)));
    const rows = Object.entries(report.variants).map(([name, v]) => {
      const cells = COLUMNS.map(([, format], i) => el("td", { "data-field": FIELDS[i] }, format(name, v)));
      cells[0].prepend(swatch(colors[name]));
      return el("tr", { "data-variant": name }, ...cells);
    });
    return el("table", { id: "report-table" }, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function renderExperiment(body) {
    const report = body.report;
    const names = [...new Set([...Object.keys(report.variants), ...Object.keys(body.series.variants)])];
    const colors = Object.fromEntries(names.map((name, i) => [name, PALETTE[i % PALETTE.length]]));
    section("meta", "meta").replaceChildren(
      `revision ${report.revision} · control ${report.control} · ${count(report.exposed_units)} exposed units, `
      + `${count(report.exposures)} exposures · `, policyLinks(body.policy));
    section("badges", "badges").replaceChildren(...body.badges.map((b) => badgeEl(b, false)));
    drawSeries(body.series, colors);
    section("report", "").replaceChildren(reportTable(report, colors));
  }

  // -- the index ------------------------------------------------------------------------------
  function renderIndex(body) {
    section("meta", "meta").replaceChildren(policyLinks(body.policy));
    renderUnattributed(body.unattributed_events || {});
    if (!body.experiments.length) {
      section("experiments", "").replaceChildren(el("p", { class: "empty" }, "No experiment has data in the sink yet."));
      return;
    }
    const head = el("tr", {}, el("th", {}, "Experiment"), el("th", {}, "Revision"), el("th", { class: "text" }, "Control"),
      el("th", { class: "text" }, "Variants"), el("th", {}, "Units"), el("th", {}, "Converting units"),
      el("th", { class: "badges-cell" }, "Health"));
    const rows = body.experiments.map((e) => {
      const href = config.root + "experiments/" + encodeURIComponent(e.experiment) + "?policy=" + encodeURIComponent(body.policy);
      return el("tr", { "data-experiment": e.experiment },
        el("td", {}, el("a", { href }, e.experiment)), el("td", {}, count(e.revision)), el("td", { class: "text" }, e.control),
        el("td", { class: "text" }, e.variants.join(", ")), el("td", {}, count(e.units)), el("td", {}, count(e.converting_units)),
        el("td", { class: "badges-cell" }, ...e.badges.map((b) => badgeEl(b, true))));
    });
    section("experiments", "").replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
  }

  // Events the jobs attributed to no experiment, by reason: counted, never dropped.
  function renderUnattributed(reasons) {
    const entries = Object.entries(reasons);
    const total = entries.reduce((sum, [, n]) => sum + n, 0);
    const parts = entries.map(([reason, n]) => `${reason.replaceAll("_", " ")} ${count(n)}`).join(", ");
    section("unattributed", "meta").replaceChildren(
      el("p", { "data-total": String(total) }, `Events attributed to no experiment: ${count(total)} (${parts})`));
  }

  // -- polling --------------------------------------------------------------------------------
  const api = config.root + "api/dashboard" + (config.experiment ? "/" + encodeURIComponent(config.experiment) : "")
    + "?policy=" + encodeURIComponent(policy);

  function showError(message) {
    const box = section("error", "error");
    box.hidden = !message;
    box.textContent = message || "";
    if (box !== app.firstChild) app.prepend(box);
  }

  async function poll() {
    try {
      const response = await fetch(api, { cache: "no-store", headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
      (config.experiment ? renderExperiment : renderIndex)(body);
      showError(null);
      app.dataset.updates = String(Number(app.dataset.updates) + 1);
      status.textContent = `updated ${clock(Date.now(), false)} UTC · refreshes every ${POLL_MS / 1000} s`;
    } catch (error) {
      showError(String(error.message || error));
      status.textContent = `update failed at ${clock(Date.now(), false)} UTC; retrying`;
    } finally {
      window.setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
