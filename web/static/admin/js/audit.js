// The audit log page (/admin/audit): every admin action, newest first, a page at a time.

import { api } from "./api.js";
import { dateTime, el, setupPage, showError, t } from "./page.js";

const PAGE = 25;
const state = { offset: 0, data: null };
const $ = (id) => document.getElementById(id);

function value(v) {
  if (Array.isArray(v)) return v.map(value).join(", ");
  if (v && typeof v === "object") return "from" in v && "to" in v ? `${value(v.from)} → ${value(v.to)}` : JSON.stringify(v);
  return v === null || v === undefined || v === "" ? "—" : String(v);
}

function detailText(detail) {
  return Object.entries(detail || {}).map(([k, v]) => `${k}: ${value(v)}`).join("; ");
}

function render() {
  const data = state.data;
  if (!data) return;
  const head = el("tr", {}, ["when", "who", "role", "action", "target", "detail"].map((k) => el("th", { text: t(`audit.col.${k}`) })));
  const rows = data.entries.map((e) => el("tr", { "data-action": e.action, "data-target": e.target }, [
    el("td", { text: dateTime(e.at) }),
    el("td", {}, e.name || e.sub, e.sub ? el("span", { class: "muted", text: ` (${e.sub})` }) : null),
    el("td", { text: t(`role.${e.role}`) }),
    el("td", { text: t(`audit.action.${e.action}`) }),
    el("td", { text: e.target }),
    el("td", { class: "muted", text: detailText(e.detail) }),
  ]));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "empty", text: t("audit.empty") })));
  $("audit-table").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  const last = Math.min(data.offset + data.entries.length, data.total);
  $("audit-page").textContent = t("audit.page", { first: data.total ? data.offset + 1 : 0, last, total: data.total });
  $("btn-newer").disabled = data.offset === 0;
  $("btn-older").disabled = last >= data.total;
}

async function load() {
  try {
    state.data = await api(`/api/admin/audit?limit=${PAGE}&offset=${state.offset}`);
    render();
  } catch (err) {
    showError(err);
  }
}

setupPage(render);
$("btn-newer").addEventListener("click", () => {
  state.offset = Math.max(0, state.offset - PAGE);
  load();
});
$("btn-older").addEventListener("click", () => {
  state.offset += PAGE;
  load();
});
load();
