// The term timetable (/admin/timetable): upload the CSV set, solve with progress, read the unmet
// needs with their reasons, re-check, and apply a week (the scheduler's own code on the server).

import { api } from "./api.js";
import { clearError, clockTime, dateTime, el, notice, setupPage, showError, t } from "./page.js";

const POLL_MS = 500;
const STATES = { created: "tt.state.created", "already exists": "tt.state.exists" }; // else the scheduler's own words
const state = { job: null, timetables: [], detail: null, check: null, applied: null };
const $ = (id) => document.getElementById(id);

function renderJob() {
  const job = state.job;
  $("job").hidden = !job;
  if (!job) return;
  $("job-bar").style.width = `${Math.round(job.progress * 100)}%`;
  $("job-state").textContent = t(`tt.job.${job.status}`, { s: job.elapsed_s.toFixed(1), limit: job.time_limit_s, error: job.error || "" });
  $("job-state").dataset.status = job.status;
  $("job-log").textContent = job.log.join("\n");
}

function renderList() {
  const head = el("tr", {}, ["id", "created", "coverage", ""].map((k) => el("th", { text: k ? t(`tt.col.${k}`) : "" })));
  const rows = state.timetables.map((tt) => el("tr", { "data-timetable": tt.id }, [
    el("td", { text: tt.id }),
    el("td", { text: dateTime(tt.created_at) }),
    el("td", { text: t("tt.coverage", tt.summary) }),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => open(tt.id), text: t("tt.open") })),
  ]));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 4, class: "empty", text: t("tt.none") })));
  $("tt-table").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
}

function renderDetail() {
  const d = state.detail;
  $("tt-detail").hidden = !d;
  if (!d) return;
  $("tt-id").textContent = d.id;
  $("tt-summary").textContent = t("tt.summary", { ...d.summary, pct: (100 * (d.summary.coverage || 0)).toFixed(1), from: d.settings.term_start, to: d.settings.term_end });
  const head = el("tr", {}, ["classroom", "school", "subject", "need", "covered", "reason", "suggestion"].map((k) => el("th", { text: t(`tt.col.${k}`) })));
  const rows = d.unmet.map((u) => el("tr", { "data-classroom": u.classroom, "data-subject": u.subject, "data-cause": u.cause }, [
    el("td", { text: u.classroom_name }), el("td", { text: u.school_name }), el("td", { text: u.subject }),
    el("td", { class: "num", text: u.need }), el("td", { class: "num", text: u.covered }),
    el("td", { text: t(`tt.cause.${u.cause}`) }), el("td", { class: "muted", text: u.suggestion }),
  ]));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7, class: "empty", text: t("tt.all_met") })));
  $("unmet-table").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  const c = state.check;
  $("check-result").textContent = c ? (c.ok ? t("tt.check_ok") : t("tt.check_bad", { n: c.violations.length })) : "";
  $("check-result").className = c ? (c.ok ? "connected" : "rec-on") : "";
  if (!$("tt-week").value && d.settings.term_start) $("tt-week").value = d.settings.term_start;
  const a = state.applied;
  if (!a) {
    $("applied-table").replaceChildren();
    return;
  }
  const ahead = el("tr", {}, ["lesson", "time", "state"].map((k) => el("th", { text: t(`tt.col.${k}`) })));
  const arows = a.lessons.map((l) => el("tr", { "data-lesson": l.id }, [
    el("td", {}, l.title, " ", el("span", { class: "muted", text: `(${l.id})` })),
    el("td", { text: `${dateTime(l.planned_start)} – ${clockTime(l.planned_end)}` }),
    el("td", { "data-state": l.state.split(":")[0], text: STATES[l.state] ? t(STATES[l.state]) : l.state }),
  ]));
  if (!arows.length) arows.push(el("tr", {}, el("td", { colspan: 3, class: "empty", text: t("tt.no_lessons", { week: a.week }) })));
  $("applied-table").replaceChildren(el("thead", {}, ahead), el("tbody", {}, arows));
}

function render() {
  renderJob();
  renderList();
  renderDetail();
}

async function loadList() {
  state.timetables = (await api("/api/admin/timetable")).timetables;
  renderList();
}

async function open(id) {
  clearError();
  try {
    state.detail = await api(`/api/admin/timetable/${encodeURIComponent(id)}`);
    state.check = null;
    state.applied = null;
    renderDetail();
  } catch (err) {
    showError(err);
  }
}

async function follow(jobId) {
  try {
    state.job = await api(`/api/admin/timetable/jobs/${encodeURIComponent(jobId)}`);
    renderJob();
    if (state.job.status === "running") {
      setTimeout(() => follow(jobId), POLL_MS);
      return;
    }
    $("btn-solve").disabled = false;
    if (state.job.status === "done") {
      await loadList();
      await open(state.job.timetable);
    }
  } catch (err) {
    showError(err);
  }
}

async function solve(event) {
  event.preventDefault();
  clearError();
  notice("");
  const files = {};
  for (const file of $("tt-files").files) files[file.name.replace(/\.csv$/i, "")] = await file.text();
  try {
    $("btn-solve").disabled = true;
    state.job = await api(`/api/admin/timetable/solve?time_limit=${encodeURIComponent($("tt-limit").value || 10)}`, { method: "POST", body: { files } });
    renderJob();
    follow(state.job.id);
  } catch (err) {
    $("btn-solve").disabled = false;
    showError(err);
  }
}

async function recheck() {
  clearError();
  try {
    state.check = await api(`/api/admin/timetable/${encodeURIComponent(state.detail.id)}/check`);
    renderDetail();
  } catch (err) {
    showError(err);
  }
}

async function applyWeek(event) {
  event.preventDefault();
  clearError();
  try {
    state.applied = await api(`/api/admin/timetable/${encodeURIComponent(state.detail.id)}/apply`, { method: "POST", body: { week: $("tt-week").value } });
    notice(t("tt.applied", { week: state.applied.week, n: state.applied.lessons.length }));
    renderDetail();
  } catch (err) {
    showError(err);
  }
}

setupPage(render);
$("solve-form").addEventListener("submit", solve);
$("btn-check").addEventListener("click", recheck);
$("apply-form").addEventListener("submit", applyWeek);
loadList().catch(showError);
