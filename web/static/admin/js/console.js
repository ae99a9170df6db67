// The admin console (/admin): schools and classrooms with CSV import/export, this week's lessons
// with their live state, join links with QR codes, and creating, editing and ending lessons.

import { api, download } from "./api.js";
import { clearError, clockTime, dateTime, el, localInput, notice, setupPage, showError, t } from "./page.js";

const POLL_MS = 2000;
const state = { me: { bureau: true, school: "" }, directory: { schools: [], classrooms: [] }, lessons: [], range: null, editing: null, links: null, today: "", pickersFor: "" };

const $ = (id) => document.getElementById(id);

function roleName(role) {
  return t(`role.${role}`);
}

function timeRange(lesson) {
  if (!lesson.planned_start) return t("lessons.unplanned");
  const end = clockTime(lesson.planned_end);
  return `${dateTime(lesson.planned_start)}${end ? ` – ${end}` : ""}`;
}

function nextLessonOf(classroomId) {
  return state.lessons.find((l) => [l.master, ...l.rurals].some((c) => c.id === classroomId));
}

// -- schools and classrooms ------------------------------------------------------------------------

function renderDirectory() {
  const table = $("classrooms-table");
  const head = el("tr", {}, ["county", "school", "classroom", "role", "grades", "join"].map((k) => el("th", { text: t(`col.${k}`) })));
  const rows = state.directory.classrooms.map((c) => {
    const lesson = nextLessonOf(c.id);
    const join = lesson
      ? el("button", { type: "button", class: "link", "data-links": lesson.id, onclick: () => showLinks(lesson.id) }, t("directory.links_of", { title: lesson.title }))
      : el("span", { class: "muted", text: t("directory.no_lesson") });
    return el("tr", { "data-classroom": c.id }, [
      el("td", { text: c.county }),
      el("td", { text: c.school_name }),
      el("td", {}, c.name, " ", el("span", { class: "muted", text: `(${c.id})` })),
      el("td", { text: roleName(c.role) }),
      el("td", { text: c.grades }),
      el("td", {}, join),
    ]);
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "empty", text: t("directory.empty") })));
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
  const key = JSON.stringify(state.directory.classrooms);
  if (key !== state.pickersFor) renderPickers(); // not on every poll: someone may be filling the form
  state.pickersFor = key;
}

function renderPickers() {
  const form = $("lesson-form");
  const master = $("pick-master");
  const chosenMaster = master.value || (state.editing && state.editing.master.id) || "";
  const masters = state.directory.classrooms.filter((c) => c.role === "master");
  master.replaceChildren(el("option", { value: "", text: t("editor.choose") }), ...masters.map((c) => el("option", { value: c.id, text: `${c.school_name} · ${c.name}` })));
  master.value = chosenMaster;
  const box = $("pick-rurals");
  const checked = new Set([...form.querySelectorAll("input[name=rural]:checked")].map((i) => i.value));
  if (!checked.size && state.editing) state.editing.rurals.forEach((r) => checked.add(r.id));
  const rurals = state.directory.classrooms.filter((c) => c.role === "rural");
  box.replaceChildren(
    el("legend", { text: t("field.rurals") }),
    ...rurals.map((c) => el("label", {}, el("input", { type: "checkbox", name: "rural", value: c.id, checked: checked.has(c.id) }), `${c.school_name} · ${c.name}`)),
  );
}

async function loadDirectory() {
  state.directory = await api("/api/admin/directory");
  renderDirectory();
}

async function importCsv(event) {
  event.preventDefault();
  clearError();
  const body = {};
  for (const name of ["schools", "classrooms"]) {
    const file = $(`file-${name}`).files[0];
    if (file) body[name] = await file.text();
  }
  try {
    const result = await api("/api/admin/directory/import", { method: "POST", body });
    state.directory = { schools: result.schools, classrooms: result.classrooms };
    notice(t("directory.imported", result.imported));
    renderDirectory();
  } catch (err) {
    notice("");
    showError(err);
  }
}

// -- lessons -----------------------------------------------------------------------------------------

function classroomState(lesson, c) {
  const online = (lesson.connected || []).some((p) => p.classroom === c.id);
  return el("span", { class: online ? "connected" : "offline", "data-state": online ? "connected" : "offline", "data-classroom": c.id, title: t(online ? "lessons.connected" : "lessons.offline") },
    `${online ? "●" : "○"} ${c.name}`);
}

function renderLessons() {
  if (state.range) $("lessons-range").textContent = t("lessons.range", state.range);
  const head = el("tr", {}, ["time", "lesson", "master", "rurals", "state", "actions"].map((k) => el("th", { text: t(`col.${k}`) })));
  const rows = state.lessons.map((l) => el("tr", { "data-lesson": l.id, class: l.planned_start && l.planned_start.startsWith(state.today) ? "today" : null }, [
    el("td", { text: timeRange(l) }),
    el("td", {}, l.title, " ", el("span", { class: "muted", text: `(${l.id})` }),
      l.kind === "broadcast" ? [el("br"), el("span", { class: "muted", "data-kind": "broadcast", text: t("kind.broadcast") })] : null),
    el("td", {}, classroomState(l, l.master)),
    el("td", {}, l.rurals.flatMap((r, i) => [i ? el("br") : null, classroomState(l, r)]),
      l.listening ? [el("br"), el("span", { class: "muted", "data-listening": String(l.listening), text: t("lessons.listening", { n: l.listening }) })] : null),
    el("td", {}, el("span", { class: l.live ? "state-live" : "state-off", "data-live": l.live ? "yes" : l.ended_at ? "ended" : "no", text: t(l.live ? "lessons.live" : l.ended_at ? "lessons.ended_state" : "lessons.not_live") }), el("br"),
      el("span", { class: l.recording ? "rec-on" : "state-off", "data-recording": l.recording ? "on" : "off", text: t(l.recording ? "lessons.recording" : l.record ? "lessons.will_record" : "lessons.no_record") })),
    el("td", { class: "actions-cell" }, [
      el("button", { type: "button", class: "secondary", "data-action": "links", onclick: () => showLinks(l.id), text: t("action.links") }),
      state.me.bureau ? el("button", { type: "button", class: "secondary", "data-action": "edit", onclick: () => startEdit(l), text: t("action.edit") }) : null,
      l.live ? el("button", { type: "button", class: "primary", "data-action": "end", onclick: () => endLesson(l), text: t("action.end") }) : null,
    ]),
  ]));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "empty", text: t("lessons.none") })));
  $("lessons-table").replaceChildren(el("thead", {}, head), el("tbody", {}, rows));
}

async function loadLessons() {
  const data = await api("/api/admin/lessons");
  state.lessons = data.lessons;
  state.range = { from: data.from, to: data.to };
  state.today = data.today;
  renderLessons();
  renderDirectory();
}

async function poll() {
  try {
    await loadLessons();
  } catch (err) {
    showError(err);
  }
  setTimeout(poll, POLL_MS);
}

function renderLinks() {
  const box = $("links");
  if (!state.links) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  $("links-lesson").textContent = state.links.title;
  $("links-list").replaceChildren(...state.links.links.map((link) => el("li", { class: "link-card", "data-classroom": link.classroom }, [
    el("div", { class: "who", text: link.name }),
    el("div", { class: "muted", text: roleName(link.role) }),
    el("img", { class: "qr", src: link.qr, alt: t("links.qr_of", { name: link.name }) }),
    el("a", { class: "join", href: link.url, target: "_blank", rel: "noopener", text: link.url }),
    el("div", { class: "muted expiry", text: t("links.expires", { at: dateTime(link.expires_at) }) }),
  ])));
}

async function showLinks(lessonId) {
  clearError();
  try {
    const data = await api(`/api/admin/lessons/${encodeURIComponent(lessonId)}/links`, { method: "POST" });
    const lesson = state.lessons.find((l) => l.id === lessonId);
    state.links = { title: lesson ? lesson.title : lessonId, links: data.links };
    renderLinks();
    $("links").scrollIntoView({ block: "start" });
  } catch (err) {
    showError(err);
  }
}

async function endLesson(lesson) {
  if (!window.confirm(t("lessons.confirm_end", { title: lesson.title }))) return;
  try {
    const result = await api(`/api/admin/lessons/${encodeURIComponent(lesson.id)}/end`, { method: "POST" });
    notice(t("lessons.ended", { title: lesson.title, n: result.disconnected.length }));
    await loadLessons();
  } catch (err) {
    showError(err);
  }
}

// -- the lesson form -------------------------------------------------------------------------------------

function startEdit(lesson) {
  state.editing = lesson;
  const form = $("lesson-form");
  form.title.value = lesson.title;
  form.kind.value = lesson.kind || "twinning";
  form.subject.value = lesson.subject;
  form.grade.value = lesson.grade;
  form.planned_start.value = localInput(lesson.planned_start);
  form.planned_end.value = localInput(lesson.planned_end);
  form.record.checked = lesson.record;
  $("pick-master").value = lesson.master.id;
  for (const box of form.querySelectorAll("input[name=rural]")) box.checked = lesson.rurals.some((r) => r.id === box.value);
  renderEditor();
  $("lesson-editor").scrollIntoView({ block: "start" });
}

function stopEdit() {
  state.editing = null;
  $("lesson-form").reset();
  renderPickers();
  renderEditor();
}

function renderEditor() {
  const editing = state.editing;
  $("editor-title").textContent = editing ? t("editor.edit", { title: editing.title }) : t("editor.new");
  $("btn-save").textContent = t(editing ? "editor.save" : "editor.create");
  $("btn-cancel").hidden = !editing;
}

async function saveLesson(event) {
  event.preventDefault();
  clearError();
  const form = $("lesson-form");
  const body = {
    title: form.title.value,
    kind: form.kind.value,
    subject: form.subject.value,
    grade: form.grade.value,
    master: form.master.value,
    rurals: [...form.querySelectorAll("input[name=rural]:checked")].map((i) => i.value),
    planned_start: form.planned_start.value,
    planned_end: form.planned_end.value,
    record: form.record.checked,
  };
  try {
    const editing = state.editing;
    if (editing && editing.live) {
      delete body.master;
      delete body.rurals;
    }
    const saved = editing
      ? await api(`/api/admin/lessons/${encodeURIComponent(editing.id)}`, { method: "PATCH", body })
      : await api("/api/admin/lessons", { method: "POST", body });
    notice(t(editing ? "editor.saved" : "editor.created", { title: saved.title, id: saved.id }));
    stopEdit();
    await loadLessons();
  } catch (err) {
    showError(err);
  }
}

/** A school admin runs their school's day; the bureau's planning parts are left out (the API refuses them anyway). */
function renderScope() {
  for (const part of document.querySelectorAll(".bureau-only")) part.hidden = !state.me.bureau;
  const line = $("scope");
  line.hidden = state.me.bureau;
  line.textContent = state.me.bureau ? "" : t("console.school_scope", { school: state.me.school });
}

async function loadMe() {
  state.me = await api("/api/admin/me");
  renderScope();
}

function render() {
  state.pickersFor = ""; // option labels are translated too
  renderScope();
  renderDirectory();
  renderLessons();
  renderLinks();
  renderEditor();
}

setupPage(render);
$("import-form").addEventListener("submit", importCsv);
$("btn-export-schools").addEventListener("click", () => download("/api/admin/directory/schools.csv", "schools.csv").catch(showError));
$("btn-export-classrooms").addEventListener("click", () => download("/api/admin/directory/classrooms.csv", "classrooms.csv").catch(showError));
$("btn-export-rural").addEventListener("click", () => download("/api/admin/directory/classrooms.csv?kind=rural", "classrooms.csv").catch(showError));
$("lesson-form").addEventListener("submit", saveLesson);
$("btn-cancel").addEventListener("click", stopEdit);
loadMe().then(loadDirectory).catch(showError).finally(poll);
