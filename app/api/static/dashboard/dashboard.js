// The spend dashboard: reads /spend/* from this proxy and draws SVG charts. Every name a
// client chose (model, user) is inserted as text, never as markup. With a master key set on
// the proxy, the key is asked for (or handed over in the URL fragment, #key=..., which never
// reaches a server) and kept for this browser tab only (sessionStorage).
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fde", "#e8833a", "#3aa76d", "#9b59b6", "#d64545", "#1abc9c",
                   "#f1c40f", "#7f8c8d", "#c0392b", "#34495e"];
  const WIDE = 960, NARROW = 480, HEIGHT = 240, LEFT = 64, RIGHT = 12, TOP = 10, BOTTOM = 28;

  const KEY_SLOT = "switchboard.dashboard.key";
  const $ = (id) => document.getElementById(id);

  class Locked extends Error {}

  function takeKeyFromFragment() {
    const match = /^#key=(.+)$/.exec(location.hash);
    if (!match) return;
    sessionStorage.setItem(KEY_SLOT, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }

  function authorised(path) {
    const key = sessionStorage.getItem(KEY_SLOT);
    return fetch(path, { headers: key ? { Authorization: "Bearer " + key } : {} });
  }

  function rangeFromPage() {
    const params = new URLSearchParams(location.search);
    const end = params.get("end") || new Date().toISOString().slice(0, 10);
    const fallback = new Date(Date.parse(end + "T00:00:00Z") - 29 * 86400000);
    const start = params.get("start") || fallback.toISOString().slice(0, 10);
    return { start, end };
  }

  async function read(path, range) {
    const query = new URLSearchParams({ start: range.start, end: range.end });
    const response = await authorised(path + "?" + query.toString());
    const body = await response.json();
    if (response.status === 401 || response.status === 403) throw new Locked(body.error.message);
    if (!response.ok) throw new Error(path + ": " + body.error.message);
    return body;
  }

  // The rows as a CSV file, fetched with the key (a plain link could not send it).
  async function download(range) {
    const query = new URLSearchParams({ ...range, format: "csv", limit: "1000" });
    const response = await authorised("/spend/logs?" + query.toString());
    if (!response.ok) return;
    const link = node("a", { href: URL.createObjectURL(await response.blob()),
                             download: `spend-${range.start}-${range.end}.csv` });
    link.click();
    URL.revokeObjectURL(link.href);
  }

  function money(value) {
    if (value >= 1) return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    return "$" + value.toFixed(6).replace(/0{1,4}$/, "");
  }
  const count = (value) => value.toLocaleString("en-US");
  const ms = (value) => value.toLocaleString("en-US", { maximumFractionDigits: 1 }) + " ms";

  function node(name, attributes, text) {
    const element = name.startsWith("svg:") ? document.createElementNS(SVG, name.slice(4))
                                            : document.createElement(name);
    for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, value);
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function days(range) {
    const out = [];
    for (let t = Date.parse(range.start + "T00:00:00Z"); t <= Date.parse(range.end + "T00:00:00Z"); t += 86400000) {
      out.push(new Date(t).toISOString().slice(0, 10));
    }
    return out;
  }

  function tile(metric, label, value, text, note) {
    const element = node("div", { class: "tile", "data-metric": metric, "data-value": String(value) });
    element.append(node("span", { class: "label" }, label), node("span", { class: "value" }, text));
    if (note) element.append(node("span", { class: "note" }, note));
    return element;
  }

  function drawTiles(totals) {
    const lookups = totals.cache_hits + totals.cache_misses;
    const hitRate = lookups ? totals.cache_hits / lookups : 0;
    const errorRate = totals.requests ? totals.errors / totals.requests : 0;
    $("tiles").replaceChildren(
      tile("cost", "Spend", totals.cost, money(totals.cost)),
      tile("requests", "Requests", totals.requests, count(totals.requests)),
      tile("errors", "Errors", totals.errors, count(totals.errors), (100 * errorRate).toFixed(1) + "% of requests"),
      tile("prompt_tokens", "Tokens in", totals.prompt_tokens, count(totals.prompt_tokens)),
      tile("completion_tokens", "Tokens out", totals.completion_tokens, count(totals.completion_tokens)),
      tile("cache_hit_rate", "Cache hit rate", hitRate, lookups ? (100 * hitRate).toFixed(1) + "%" : "no lookups",
           count(totals.cache_hits) + " of " + count(lookups) + " lookups"),
      tile("saved_cost", "Saved by cache", totals.saved_cost, money(totals.saved_cost)));
  }

  // The axis top: the largest value rounded up to 1, 2, 2.5 or 5 times a power of ten.
  function niceTop(value) {
    if (!(value > 0)) return 0;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    return [1, 2, 2.5, 4, 5, 10].map((step) => step * power).find((top) => top >= value);
  }

  // A chart frame `width` wide: y axis with four grid lines up to the largest value, day labels below.
  function frame(labels, largest, format, width) {
    const top = niceTop(largest);
    const svg = node("svg:svg", { viewBox: `0 0 ${width} ${HEIGHT}`, role: "img" });
    const plot = HEIGHT - TOP - BOTTOM;
    for (let i = 0; i <= 4; i++) {
      const y = TOP + plot - (plot * i) / 4;
      svg.append(node("svg:line", { class: "grid", x1: LEFT, x2: width - RIGHT, y1: y, y2: y }));
      svg.append(node("svg:text", { x: LEFT - 6, y: y + 4, "text-anchor": "end" }, format((top * i) / 4)));
    }
    const band = (width - LEFT - RIGHT) / Math.max(labels.length, 1);
    const every = Math.ceil(labels.length / (width / 80));
    labels.forEach((label, i) => {
      if (i % every === 0) {
        svg.append(node("svg:text", { x: LEFT + band * (i + 0.5), y: HEIGHT - 8, "text-anchor": "middle" }, label.slice(5)));
      }
    });
    return { svg, band, y: (value) => (top ? (plot * value) / top : 0), base: TOP + plot };
  }

  function bar(chart, x, width, bottom, height, fill, data, title) {
    const rect = node("svg:rect", { x: x.toFixed(2), y: (bottom - height).toFixed(2), width: width.toFixed(2),
                                    height: Math.max(height, 0).toFixed(2), fill });
    for (const [key, value] of Object.entries(data)) rect.setAttribute("data-" + key, String(value));
    rect.append(node("svg:title", {}, title));
    chart.svg.append(rect);
  }

  function drawSpend(range, daily, colors) {
    const labels = days(range);
    const byDay = new Map(daily.map((d) => [d.date, d]));
    const chart = frame(labels, Math.max(0, ...daily.map((d) => d.cost)), money, WIDE);
    labels.forEach((day, i) => {
      let stacked = 0;
      for (const entry of (byDay.get(day) || { models: [] }).models) {
        if (entry.cost <= 0) continue;
        const height = chart.y(entry.cost);
        bar(chart, LEFT + chart.band * (i + 0.15), chart.band * 0.7, chart.base - stacked, height,
            colors.get(entry.model), { day, model: entry.model, value: entry.cost }, `${day} · ${entry.model}: ${money(entry.cost)}`);
        stacked += height;
      }
    });
    $("chart-spend").replaceChildren(chart.svg, legend([...colors], "model"));
  }

  // [name, color] pairs as a row of swatches; `key` names the data attribute each carries.
  function legend(entries, key) {
    const row = node("div", { class: "legend" });
    row.append(...entries.map(([name, color]) => {
      const item = node("span", key ? { ["data-" + key]: name } : {}, name);
      item.style.setProperty("--swatch", color);
      return item;
    }));
    return row;
  }

  // Bars side by side per day, one per series: [{name, field, color}].
  function drawPaired(id, range, daily, series, format) {
    const labels = days(range);
    const byDay = new Map(daily.map((d) => [d.date, d]));
    const chart = frame(labels, Math.max(0, ...daily.flatMap((d) => series.map((s) => d[s.field]))), format, NARROW);
    const width = (chart.band * 0.8) / series.length;
    labels.forEach((day, i) => {
      const entry = byDay.get(day);
      if (!entry) return;
      series.forEach((s, k) => {
        bar(chart, LEFT + chart.band * (i + 0.1) + width * k, width, chart.base, chart.y(entry[s.field]), s.color,
            { day, series: s.name, value: entry[s.field] }, `${day} · ${s.name}: ${format(entry[s.field])}`);
      });
    });
    $(id).replaceChildren(chart.svg, legend(series.map((s) => [s.name, s.color])));
  }

  // Per model: its name and figures, then a light p95 bar with the p50 bar over it.
  function drawLatency(rows, colors) {
    const height = 40 * rows.length + 4;
    const svg = node("svg:svg", { viewBox: `0 0 ${NARROW} ${height}`, role: "img" });
    const top = Math.max(1, ...rows.map((r) => r.p95_ms));
    const span = NARROW - 2;
    rows.forEach((row, i) => {
      const y = 40 * i;
      const fill = colors.get(row.model) || PALETTE[0];
      svg.append(node("svg:text", { x: 0, y: y + 12 },
                      `${row.model} · p50 ${ms(row.p50_ms)} · p95 ${ms(row.p95_ms)}`));
      for (const [percentile, opacity] of [["p95", 0.35], ["p50", 1]]) {
        const value = row[percentile + "_ms"];
        const rect = node("svg:rect", { x: 0, y: y + 18, height: 14, width: ((span * value) / top).toFixed(2),
                                        fill, opacity, "data-model": row.model, "data-percentile": percentile,
                                        "data-value": value });
        rect.append(node("svg:title", {}, `${row.model} ${percentile}: ${ms(value)}`));
        svg.append(rect);
      }
    });
    $("chart-latency").replaceChildren(rows.length ? svg : node("p", { class: "empty" }, "No answered requests in this range."));
  }

  function fillTable(id, rows, key, cells) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows.map((row) => {
      const tr = node("tr", { ["data-" + key]: row[key] === null ? "" : row[key] });
      cells(row).forEach((cell) => tr.append(node("td", {}, cell)));
      return tr;
    }));
  }

  function render(range, [totals, daily, models, users, latency]) {
    const colors = new Map(models.data.map((m, i) => [m.model, PALETTE[i % PALETTE.length]]));
    drawTiles(totals);
    drawSpend(range, daily.data, colors);
    drawPaired("chart-tokens", range, daily.data, [
      { name: "in", field: "prompt_tokens", color: "#2f6fde" },
      { name: "out", field: "completion_tokens", color: "#e8833a" }], count);
    drawPaired("chart-requests", range, daily.data, [
      { name: "requests", field: "requests", color: "#3aa76d" },
      { name: "errors", field: "errors", color: "#d64545" }], count);
    drawLatency(latency.data, colors);
    fillTable("users", users.data.slice(0, 10), "user", (u) => [
      u.user === null ? "(no user)" : u.user, count(u.requests), count(u.prompt_tokens),
      count(u.completion_tokens), money(u.cost)]);
    fillTable("models", models.data, "model", (m) => [
      m.model === null ? "(none)" : m.model, count(m.requests), count(m.errors), count(m.prompt_tokens),
      count(m.completion_tokens), money(m.cost), money(m.saved_cost)]);
    $("status").textContent = `${range.start} to ${range.end} (UTC)`;
    document.body.dataset.state = "ready";
  }

  function load(range) {
    $("login").hidden = true;
    Promise.all(["/spend", "/spend/daily", "/spend/models", "/spend/users", "/spend/latency"].map((p) => read(p, range)))
      .then((results) => render(range, results))
      .catch((error) => {
        if (error instanceof Locked) {
          $("login").hidden = false;
          $("status").textContent = "This proxy needs its master key: " + error.message;
          document.body.dataset.state = "locked";
          return;
        }
        $("status").textContent = "Could not load spend: " + error.message;
        document.body.dataset.state = "error";
      });
  }

  function start() {
    takeKeyFromFragment();
    const range = rangeFromPage();
    $("start").value = range.start;
    $("end").value = range.end;
    $("csv").addEventListener("click", (event) => { event.preventDefault(); download(range); });
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_SLOT, $("key").value);
      $("key").value = "";
      load(range);
    });
    load(range);
  }

  start();
}());
