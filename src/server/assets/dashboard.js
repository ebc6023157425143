// The loftwatch dashboard: reads the JSON API of this server and draws tables and SVG charts.
// It builds every element with the DOM API and sets text with textContent, so values from the
// API are never parsed as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 15000;
const RANGES = ["1h", "24h"];
const PERCENTILES = ["p50", "p90", "p99"];

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function svgElement(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, String(value));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function formatTime(millis) {
  return new Date(millis).toLocaleString();
}

function formatMs(value) {
  if (value === null || value === undefined) return "–";
  return value >= 100 ? Math.round(value) + " ms" : value.toFixed(1) + " ms";
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(path + " returned " + response.status);
  return response.json();
}

function renderProbes(status) {
  const rows = document.getElementById("probe-rows");
  clear(rows);
  if (status.probes.length === 0) {
    const row = element("tr");
    const cell = element("td", "muted", "No results yet.");
    cell.colSpan = 6;
    row.appendChild(cell);
    rows.appendChild(row);
    return;
  }
  for (const probe of status.probes) {
    const row = element("tr");
    row.dataset.probe = probe.probe;
    row.appendChild(element("td", null, probe.probe));
    const outcome = element("td");
    outcome.appendChild(element("span", "badge " + (probe.outcome === "ok" ? "ok" : "bad"), probe.outcome));
    row.appendChild(outcome);
    row.appendChild(element("td", null, probe.status === null ? "–" : probe.status));
    row.appendChild(element("td", null, formatMs(probe.latency_ms)));
    row.appendChild(element("td", null, formatTime(probe.finished_ms)));
    row.appendChild(element("td", "muted", probe.detail || ""));
    rows.appendChild(row);
  }
}

function runbookNode(runbook) {
  if (!runbook) return element("span", "muted", "no runbook");
  if (/^https?:\/\//i.test(runbook)) {
    const link = element("a", "runbook", runbook);
    link.href = runbook;
    link.rel = "noopener noreferrer";
    return link;
  }
  return element("span", "runbook", runbook);
}

function renderAlerts(alerts) {
  const list = document.getElementById("alert-list");
  clear(list);
  const active = alerts.alerts;
  if (active.length === 0) {
    list.appendChild(element("p", "muted", "No alerts firing."));
    return;
  }
  for (const alert of active) {
    const item = element("div", "alert " + alert.state);
    item.dataset.alertId = alert.alert_id;
    const title = element("div", "title");
    title.appendChild(element("span", "badge " + alert.severity, alert.severity));
    title.appendChild(document.createTextNode(" " + alert.rule + " on " + alert.probe + " "));
    title.appendChild(element("span", "badge " + alert.state, alert.state));
    item.appendChild(title);
    const since = "value " + (alert.value || "–") + ", since " + formatTime(alert.since_ms);
    item.appendChild(element("div", "muted", since));
    const runbook = element("div", null, "Runbook: ");
    runbook.appendChild(runbookNode(alert.runbook));
    item.appendChild(runbook);
    list.appendChild(item);
  }
}

function renderSilences(silences) {
  const list = document.getElementById("silence-list");
  clear(list);
  const items = silences && Array.isArray(silences.silences) ? silences.silences : [];
  if (items.length === 0) {
    list.appendChild(element("p", "muted", "No silences."));
    return;
  }
  for (const silence of items) {
    const matchers = silence.matchers ? JSON.stringify(silence.matchers) : "";
    const text = [silence.id, matchers, silence.comment, silence.ends_at || silence.endsAt]
      .filter(Boolean)
      .join(" · ");
    list.appendChild(element("div", "silence", text));
  }
}

function renderNotifications(data) {
  const rows = document.getElementById("notification-rows");
  clear(rows);
  if (data.notifications.length === 0) {
    const row = element("tr");
    const cell = element("td", "muted", "No notifications.");
    cell.colSpan = 7;
    row.appendChild(cell);
    rows.appendChild(row);
    return;
  }
  for (const item of data.notifications) {
    const row = element("tr");
    row.appendChild(element("td", null, formatTime(item.at_ms)));
    const kind = element("td");
    kind.appendChild(element("span", "badge " + item.kind, item.kind));
    row.appendChild(kind);
    row.appendChild(element("td", null, item.severity));
    row.appendChild(element("td", null, item.rule));
    row.appendChild(element("td", null, item.probe));
    row.appendChild(element("td", null, item.value));
    const deliveries = element("td");
    if (item.deliveries.length === 0) deliveries.appendChild(element("span", "muted", "no receiver"));
    for (const delivery of item.deliveries) {
      const text = delivery.receiver + ": " + delivery.status;
      const badge = element("span", "badge " + delivery.status, text);
      if (delivery.last_error) badge.title = delivery.last_error;
      deliveries.appendChild(badge);
      deliveries.appendChild(document.createTextNode(" "));
    }
    row.appendChild(deliveries);
    rows.appendChild(row);
  }
}

// Builds an SVG path over the minutes of a history response. Minutes without a value break
// the line; a lone point is drawn as a short dash so it stays visible.
function seriesPath(history, value, x, y) {
  let d = "";
  let points = 0;
  let previous = null;
  for (const point of history.points) {
    const v = value(point);
    if (v === null || v === undefined) {
      previous = null;
      continue;
    }
    const px = x(point.minute_ms);
    const py = y(v);
    const adjacent = previous !== null && point.minute_ms - previous === history.step_ms;
    d += (adjacent ? "L" : "M") + px.toFixed(1) + " " + py.toFixed(1) + (adjacent ? "" : "h3");
    previous = point.minute_ms;
    points += 1;
  }
  return { d: d, points: points };
}

function chart(history, series, options) {
  const width = 600, height = 160, left = 44, right = 8, top = 8, bottom = 20;
  const svg = svgElement("svg", {
    viewBox: "0 0 " + width + " " + height,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": options.title,
  });
  let max = 0;
  for (const point of history.points) {
    for (const entry of series) {
      const v = entry.value(point);
      if (v !== null && v !== undefined && v > max) max = v;
    }
  }
  if (options.fixedMax) max = options.fixedMax;
  if (max <= 0) max = 1;

  const span = history.to_ms - history.from_ms;
  const x = (t) => left + ((t - history.from_ms) / span) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);

  svg.appendChild(svgElement("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
  svg.appendChild(svgElement("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }));
  const topLabel = svgElement("text", { class: "label", x: 2, y: top + 8 });
  topLabel.textContent = options.format(max);
  svg.appendChild(topLabel);
  const startLabel = svgElement("text", { class: "label", x: left, y: height - 6 });
  startLabel.textContent = "-" + history.range;
  svg.appendChild(startLabel);
  const endLabel = svgElement("text", { class: "label", x: width - right - 24, y: height - 6 });
  endLabel.textContent = "now";
  svg.appendChild(endLabel);

  for (const entry of series) {
    const path = seriesPath(history, entry.value, x, y);
    svg.appendChild(svgElement("path", {
      class: "series " + entry.name,
      d: path.d,
      "data-points": path.points,
      "data-range": history.range,
    }));
  }
  const box = element("div", "chart");
  box.appendChild(element("h3", null, options.title));
  box.appendChild(svg);
  return box;
}

function errorClasses(history) {
  let total = 0;
  const classes = {};
  for (const point of history.points) {
    total += point.count;
    for (const [name, count] of Object.entries(point.errors)) {
      classes[name] = (classes[name] || 0) + count;
    }
  }
  return { total: total, classes: classes };
}

function errorSummary(history) {
  const summary = errorClasses(history);
  const names = Object.keys(summary.classes).sort();
  if (summary.total === 0) return element("div", "classes muted", "No runs in " + history.range + ".");
  if (names.length === 0) return element("div", "classes", "No errors in " + summary.total + " runs.");
  const parts = names.map((name) => {
    const rate = (100 * summary.classes[name] / summary.total).toFixed(1);
    return name + " " + rate + " % (" + summary.classes[name] + ")";
  });
  return element("div", "classes", parts.join(", ") + " of " + summary.total + " runs");
}

function renderCharts(histories) {
  const latency = document.getElementById("latency-charts");
  const errors = document.getElementById("error-charts");
  clear(latency);
  clear(errors);
  if (histories.length === 0) {
    latency.appendChild(element("p", "muted", "No results yet."));
    errors.appendChild(element("p", "muted", "No results yet."));
    return;
  }
  for (const probe of histories) {
    const latencyRow = element("div", "charts");
    const errorRow = element("div", "charts");
    for (const history of probe.ranges) {
      const series = PERCENTILES.map((name) => ({ name: name, value: (point) => point[name + "_ms"] }));
      latencyRow.appendChild(chart(history, series, {
        title: probe.probe + ", last " + history.range,
        format: (v) => Math.round(v) + " ms",
      }));
      const rate = [{
        name: "error-rate",
        value: (point) => (point.count > 0 ? (100 * sumErrors(point)) / point.count : null),
      }];
      const errorChart = chart(history, rate, {
        title: probe.probe + " error rate, last " + history.range,
        format: (v) => Math.round(v) + " %",
        fixedMax: 100,
      });
      errorChart.appendChild(errorSummary(history));
      errorRow.appendChild(errorChart);
    }
    latency.appendChild(latencyRow);
    errors.appendChild(errorRow);
  }
}

function sumErrors(point) {
  return Object.values(point.errors).reduce((sum, count) => sum + count, 0);
}

async function refresh() {
  try {
    const [status, alerts, notifications] = await Promise.all([
      getJson("/api/v1/status"),
      getJson("/api/v1/alerts"),
      getJson("/api/v1/notifications"),
    ]);
    // The silences endpoint is optional: without it the section shows that there are none.
    const silences = await getJson("/api/v1/silences").catch(() => null);
    const histories = await Promise.all(status.probes.map(async (probe) => ({
      probe: probe.probe,
      ranges: await Promise.all(RANGES.map((range) =>
        getJson("/api/v1/history?probe=" + encodeURIComponent(probe.probe) + "&range=" + range))),
    })));
    renderProbes(status);
    renderAlerts(alerts);
    renderSilences(silences);
    renderCharts(histories);
    renderNotifications(notifications);
    const summary = document.getElementById("summary");
    summary.textContent = status.alerts_firing + " alerts firing, " + status.probes.length + " probes";
    summary.className = "summary" + (status.alerts_firing > 0 ? " firing" : "");
    document.getElementById("updated").textContent = "updated " + formatTime(status.generated_ms);
  } catch (error) {
    document.getElementById("updated").textContent = "update failed: " + error.message;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
