// Usage reports (admins): lessons scheduled vs held (开课率), minutes attended, recordings, comments
// and evaluations per rural classroom, school, county or subject, with charts and a CSV download.

import { columnChart } from "./charts.js";
import { api, el, link, setupPage, showError, withToken } from "./common.js";
import { t } from "./i18n.js";

const form = document.getElementById("report-form");
const FIGURES = ["scheduled", "held", "rate_percent", "unscheduled", "minutes", "recordings", "comments", "evaluations"];
const LABEL_COLUMNS = { classroom: ["classroom_name", "school", "county"], school: ["school", "county"], county: ["county"], subject: ["subject"] };
let report = null;

function params() {
  const p = {};
  for (const k of ["from", "to", "group", "county"]) {
    const v = form.elements[k].value.trim();
    if (v) p[k] = v;
  }
  return p;
}

function rowLabel(r) {
  return r.classroom_name || r.school || r.county || r.subject || r.key;
}

function render() {
  if (!report) return;
  const cols = LABEL_COLUMNS[report.group];
  const total = report.total;
  document.getElementById("totals").replaceChildren(
    ...[["reports.col.scheduled", total.scheduled], ["reports.col.held", total.held],
      ["reports.col.rate_percent", total.rate_percent === null ? "—" : `${total.rate_percent}%`],
      ["reports.col.minutes", total.minutes.toFixed(1)], ["reports.col.recordings", total.recordings],
      ["reports.col.comments", total.comments], ["reports.col.evaluations", total.evaluations]]
      .map(([k, v]) => el("div", { class: "stat", dataset: { stat: k.split(".").pop() } }, el("span", { class: "stat-label", text: t(k) }), el("strong", { class: "stat-value", text: String(v) }))));
  const groups = report.rows.map((r) => ({ label: rowLabel(r), values: [r.rate_percent ?? 0] }));
  document.getElementById("chart-rate").replaceChildren(
    columnChart(groups, [{ name: t("reports.col.rate_percent"), color: "#229954", max: 100, format: (v) => `${Math.round(v)}%` }], { labels: { title: t("reports.chart_rate") } }),
    el("figcaption", { text: t("reports.chart_rate") }));
  document.getElementById("chart-minutes").replaceChildren(
    columnChart(report.rows.map((r) => ({ label: rowLabel(r), values: [r.minutes, r.held] })),
      [{ name: t("reports.col.minutes"), color: "#2471a3", format: (v) => v.toFixed(1) }, { name: t("reports.col.held"), color: "#b9770e" }],
      { labels: { title: t("reports.chart_minutes") } }),
    el("figcaption", { text: t("reports.chart_minutes") }));
  const table = document.getElementById("usage-table");
  const head = el("tr", {}, ...cols.map((c) => el("th", { text: t(`reports.col.${c}`) })), ...FIGURES.map((c) => el("th", { class: "num", text: t(`reports.col.${c}`) })));
  const cell = (r, c) => el("td", { class: "num", dataset: { col: c }, text: r[c] === null ? "—" : c === "minutes" ? r[c].toFixed(1) : c === "rate_percent" ? `${r[c].toFixed(1)}%` : String(r[c]) });
  const rows = report.rows.map((r) => el("tr", { dataset: { key: r.key } }, ...cols.map((c) => el("td", { text: r[c] || "" })), ...FIGURES.map((c) => cell(r, c))));
  rows.push(el("tr", { class: "summary", dataset: { key: "total" } }, el("td", { text: t("reports.total"), colspan: cols.length }), ...FIGURES.map((c) => cell(total, c))));
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  if (!report.rows.length) table.append(el("caption", { class: "empty", text: t("reports.none") }));
}

async function load() {
  const p = params();
  const qs = new URLSearchParams(p);
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(p)) url.searchParams.set(k, v);
  history.replaceState(null, "", url);
  document.getElementById("download-csv").href = withToken(`/api/reports/usage?${qs}&format=csv`);
  try {
    report = await api(`/api/reports/usage?${qs}`);
    document.getElementById("error").hidden = true;
    render();
  } catch (err) {
    showError(err);
  }
}

function main() {
  setupPage(render);
  document.getElementById("link-library").href = link("/recordings");
  document.getElementById("link-patrol").href = link("/patrol");
  const q = new URLSearchParams(location.search);
  const today = new Date();
  const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  form.elements.to.value = q.get("to") || iso(today);
  form.elements.from.value = q.get("from") || iso(new Date(today.getTime() - 29 * 86400000));
  form.elements.group.value = q.get("group") || "classroom";
  form.elements.county.value = q.get("county") || "";
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  load();
}

main();
