// The abstream dashboard: polls the sink's JSON API and redraws in place (no reload, no library).
// Every value from the API reaches the page through textContent or an SVG attribute, never as markup.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("config").textContent);
  const POLL_MS = 5000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#000000"];
  const WIDE = { W: 720, H: 280 }, SMALL = { W: 440, H: 220 }, M = { left: 58, right: 16, top: 12, bottom: 30 };
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
  function niceTicks(min, max, n) {
    const raw = (max - min) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const ticks = [];
    for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9; v += step) ticks.push(v);
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
  function drawChart(figure, { x0, x1, yMin = 0, yMax, yFormat, series, label, size = WIDE }) {
    const { W, H } = size;
    const svg = figure.querySelector("svg");
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("aria-label", label);
    const sx = (x) => M.left + ((x - x0) / Math.max(1, x1 - x0)) * (W - M.left - M.right);
    const sy = (y) => H - M.bottom - ((y - yMin) / (yMax - yMin)) * (H - M.top - M.bottom);
    for (const t of niceTicks(yMin, yMax, 4)) {
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
    const base = sy(Math.max(0, yMin));
    svg.append(svgEl("line", { class: "axis", x1: M.left, x2: W - M.right, y1: base, y2: base }));
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

  function newFigure(id, title, note) {
    const node = el("figure", { id }, el("figcaption", {}, title + " ", el("small", {}, note)));
    node.append(svgEl("svg", { class: "chart", role: "img" }), el("div", { class: "legend" }));
    return node;
  }

  function figure(id, title, note) {
    return document.getElementById(id) || section("charts", "charts").appendChild(newFigure(id, title, note));
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

  // -- metric panels --------------------------------------------------------------------------
  // A metric's value: a rate for proportions, otherwise a number (mean per unit, or sum(x) / sum(y)).
  const metricValue = (m, x) => (m.type === "proportion" ? pct(x) : g4(x));
  const signed = (text, x) => (x > 0 ? "+" : "") + text;
  // A difference: in percentage points for proportions (the unit written once, after an interval).
  const diffNumber = (m, x) => (x === null || x === undefined ? "n/a"
    : m.type === "proportion" ? signed((x * 100).toFixed(2), x) : signed(g4(x), x));
  const unitOf = (m) => (m.type === "proportion" ? " pp" : "");
  const range = (format, low, high) => (low === null || low === undefined ? "n/a" : "[" + format(low) + ", " + format(high) + "]");
  const DIRECTION = { increase: "higher is better", decrease: "lower is better" };

  function describe(m) {
    const cap = m.cap || {};
    const capped = cap.value !== undefined ? `capped at ${g4(cap.value)} per unit`
      : cap.percentile !== undefined ? `capped at the p${g4(cap.percentile * 100)} unit` : null;
    const what = { proportion: "rate per unit", mean: "mean per unit", ratio: "sum of numerators / sum of denominators" }[m.type];
    return [m.key, `${m.type} (${what})`, DIRECTION[m.direction], capped].filter(Boolean).join(" · ");
  }

  // A forest plot of one treatment's relative lift: its interval against 0, coloured by what it means.
  function liftBar(m, lift, scale) {
    const w = 110, h = 16, mid = w / 2, sx = (x) => mid + (x / scale) * (mid - 4);
    const svg = svgEl("svg", { class: "lift-bar", viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img" });
    svg.append(svgEl("line", { class: "zero", x1: mid, x2: mid, y1: 0, y2: h }));
    if (!lift || lift.relative === null) return svg;
    const significant = lift.p_value_adjusted !== null && lift.p_value_adjusted < 0.05;
    const good = (lift.relative > 0) === (m.direction === "increase");
    const tone = !significant ? "neutral" : good ? "good" : "bad";
    const clamp = (x) => Math.max(2, Math.min(w - 2, sx(x)));
    svg.append(svgEl("line", { class: "ci " + tone, x1: clamp(lift.relative_ci_low), x2: clamp(lift.relative_ci_high), y1: h / 2, y2: h / 2 }));
    svg.append(svgEl("circle", { class: "point " + tone, cx: clamp(lift.relative), cy: h / 2, r: 3.5 }));
    svg.setAttribute("aria-label", `relative lift ${signedPct(lift.relative)}, 95% CI ${signedPct(lift.relative_ci_low)} to ${signedPct(lift.relative_ci_high)}`);
    return svg;
  }

  // A cell with a main value and, below it, a smaller one (an interval, a count); each its own data-field.
  function stacked(main, sub) {
    const parts = [el("span", { class: "main", "data-field": main[0] }, main[1])];
    if (sub) parts.push(el("span", { class: "sub", "data-field": sub[0] }, sub[1]));
    return el("td", {}, ...parts);
  }

  function metricRow(m, name, v, { colors, scale, adjusted }) {
    const lift = v.lift, diff = (x) => diffNumber(m, x), value = (x) => metricValue(m, x);
    const nonzero = count(v.nonzero_units) + (m.type === "proportion" ? " converting" : " non-zero");
    const cells = [
      el("td", { "data-field": "variant" }, swatch(colors[name]), name),
      stacked(["units", count(v.units)], ["nonzero_units", nonzero]),
      stacked(["value", value(v.value)], ["ci", range(value, v.ci_low, v.ci_high)]),
    ];
    if (v.is_control) {
      cells.push(el("td", { "data-field": "lift", colspan: 4, class: "text" }, "control"));
    } else if (!lift) {
      cells.push(el("td", { "data-field": "lift", colspan: 4, class: "text" }, "n/a (needs 2+ units per variant)"));
    } else {
      cells.push(
        lift.relative === null ? stacked(["lift", "n/a"], null)
          : stacked(["lift", signedPct(lift.relative)], ["lift_ci", range(signedPct, lift.relative_ci_low, lift.relative_ci_high)]),
        el("td", { "data-field": "lift_bar" }, liftBar(m, lift, scale)),
        stacked(["diff", diff(lift.absolute) + unitOf(m)],
          ["diff_ci", range(diff, lift.absolute_ci_low, lift.absolute_ci_high) + unitOf(m)]),
        stacked(["p_value", g4(lift.p_value)], adjusted ? ["p_adjusted", "adj. " + g4(lift.p_value_adjusted)] : null));
    }
    return el("tr", { "data-variant": name }, ...cells);
  }

  function metricTable(m, colors) {
    const lifts = Object.values(m.variants).map((v) => v.lift).filter(Boolean);
    // Shown when a correction moved it: with none, BH gives back m * p / m, which can differ from p in the last bit.
    const adjusted = lifts.some((l) => l.p_value !== null
      && Math.abs(l.p_value_adjusted - l.p_value) > 1e-9 * Math.abs(l.p_value));
    const scale = Math.max(0.01, ...lifts.filter((l) => l.relative !== null)
      .flatMap((l) => [Math.abs(l.relative_ci_low), Math.abs(l.relative_ci_high)]));
    const titles = ["Variant", "Units", "Value [95% CI]", "Lift vs control", "", "Difference",
      adjusted ? "p (adjusted)" : "p-value"];
    const head = el("tr", {}, ...titles.map((title) => el("th", {}, title)));
    const rows = Object.entries(m.variants).map(([name, v]) => metricRow(m, name, v, { colors, scale, adjusted }));
    return el("table", { class: "metric-table" }, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function metricChart(m, shown, series, colors) {
    const n = series.buckets, start = series.start_ms, step = series.step_ms;
    const end = (i) => start + (i + 1) * step;
    const names = Object.keys(shown.variants);
    const lines = names.map((name) => {
      const v = shown.variants[name];
      return {
        name, color: colors[name], points: v.value.map((y, i) => [end(i), y]),
        band: v.value.map((y, i) => [end(i), y === null ? null : v.ci_low[i], v.ci_high[i]]),
        last: metricValue(m, v.value[n - 1] ?? null),
      };
    });
    // As for the rate: scale to the bands once a variant has some units, not to its first few units'.
    const units = (name) => (series.variants[name] || { units: [] }).units;
    const settled = (name, column) => shown.variants[name][column].filter((y, i) => y !== null
      && units(name)[i] >= Math.min(30, units(name)[n - 1]));
    const highs = names.flatMap((name) => settled(name, "ci_high"));
    const top = highs.length ? Math.max(...highs) : null;
    const yMin = Math.min(0, ...names.flatMap((name) => settled(name, "ci_low")));
    const yMax = m.type === "proportion" ? Math.min(1, Math.max(0.01, (top ?? 0) * 1.08))
      : top !== null && top > yMin ? top + (top - yMin) * 0.08 : yMin + 1;
    const node = newFigure("metric-chart-" + m.key, "", "cumulative by first exposure, 95% CI; UTC");
    drawChart(node, {
      size: SMALL, x0: start, x1: n ? end(n - 1) : start + step, yMin, yMax, series: lines,
      yFormat: m.type === "proportion" ? (t) => pct(t, yMax < 0.05 ? 1 : 0) : (t) => String(Number(t.toPrecision(3))),
      label: `Cumulative ${m.title} per variant with 95% confidence band`,
    });
    return node;
  }

  function metricPanel(m, body, colors) {
    const shown = (body.series.metrics || {})[m.key];
    const head = el("header", {}, el("span", { class: "role " + m.role }, m.role), el("h2", {}, m.title),
      el("small", {}, describe(m)));
    const guard = body.badges.find((b) => b.name === "guardrail:" + m.key);
    if (guard) head.append(badgeEl(guard, false));
    const panel = el("article", { class: "metric", "data-metric": m.key, "data-role": m.role,
      "data-has-data": String(m.has_data), "data-guardrail-failed": String(m.guardrail_failed) }, head);
    if (!m.has_data) {
      const units = Object.entries(m.variants).map(([name, v]) => `${name}: ${count(v.units)} units`).join(", ");
      panel.append(el("p", { class: "empty", "data-field": "no-data" }, `no data yet (${units || "no units"})`));
      return panel;
    }
    const chart = !shown ? el("p", { class: "empty" }, "no series")
      : shown.note ? el("p", { class: "note", "data-field": "note" }, shown.note)
      : metricChart(m, shown, body.series, colors);
    panel.append(el("div", { class: "metric-body" }, chart, metricTable(m, colors)));
    return panel;
  }

  function renderMetrics(body, colors) {
    const metrics = body.report.metrics || [];
    const box = section("metrics", "metrics");
    box.hidden = !metrics.length;
    box.replaceChildren(...metrics.map((m) => metricPanel(m, body, colors)));
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
    renderMetrics(body, colors);
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
