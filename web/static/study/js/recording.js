// The recording page: the player with the lesson's events and the observers' comments as markers on
// one timeline, comments and replies, the evaluation rubric, and the classroom analysis.

import { renderAnalysis } from "./analysis.js";
import { api, clock, dateTime, el, link, minutes, roleName, setupPage, showError, withToken } from "./common.js";
import { t } from "./i18n.js";
import { renderRubricForm, renderEvaluations } from "./rubric.js";

const id = decodeURIComponent(location.pathname.split("/")[2] || "");
const video = document.getElementById("video");
const timeline = document.getElementById("timeline");
const state = { rec: null, comments: [], analysis: null, analysisStatus: "", evaluations: null, composerT: 0, selected: null };

function duration() {
  const d = state.rec?.duration_s || 0;
  return d > 0 ? d : video.duration || 0;
}

function at(tv) {
  const d = duration();
  return d ? `${Math.min(100, Math.max(0, (100 * tv) / d)).toFixed(3)}%` : "0%";
}

function seek(tv, { play = false } = {}) {
  const target = Math.max(0, Math.min(tv, duration()));
  video.currentTime = target;
  setComposerTime(target);
  if (play) video.play().catch(() => {});
  updatePlayhead();
}

function setComposerTime(tv) {
  state.composerT = Math.round(tv * 10) / 10;
  document.getElementById("composer-time").textContent = clock(state.composerT);
}

function updatePlayhead() {
  document.getElementById("playhead").style.left = at(video.currentTime || 0);
  document.getElementById("timeline-progress").style.width = at(video.currentTime || 0);
}

function eventLabel(e) {
  const name = (cid) => {
    if (!cid) return "";
    const c = (state.rec?.classrooms || []).find((x) => x.classroom === cid);
    return c ? c.name : cid;
  };
  switch (e.event) {
    case "floor":
      return e.classroom ? t("turns.floor_to", { name: name(e.classroom) }) : t("analysis.master_takes_floor");
    case "hand_raised":
      return t("event.hand_raised_by", { name: name(e.classroom) });
    case "hand_lowered":
      return t("event.hand_lowered_by", { name: name(e.classroom) });
    case "courseware":
      return e.on ? t("event.courseware_on") : t("event.courseware_off");
    case "classroom_joined":
      return t("event.joined", { name: name(e.classroom) });
    case "classroom_left":
      return t("event.left", { name: name(e.classroom) });
    default:
      return e.event;
  }
}

function markerClass(e) {
  return e.event === "classroom_joined" || e.event === "classroom_left" ? "presence" : e.event;
}

function renderMarkers() {
  const box = document.getElementById("timeline-markers");
  box.replaceChildren(...(state.rec?.markers || []).map((e) => el("button", {
    type: "button", class: `marker ${markerClass(e)}`, style: `left:${at(e.t)}`, title: `${clock(e.t)} ${eventLabel(e)}`,
    dataset: { t: e.t, event: e.event }, onclick: (ev) => { ev.stopPropagation(); seek(e.t); },
  })));
  const list = document.getElementById("events");
  const important = (state.rec?.markers || []).filter((e) => e.event !== "hand_lowered");
  list.replaceChildren(...important.map((e) => el("li", { class: markerClass(e) },
    el("button", { type: "button", class: "time-link", onclick: () => seek(e.t), text: clock(e.t) }), " ", eventLabel(e))));
  if (!important.length) list.append(el("li", { class: "empty", text: t("events.none") }));
}

function renderCommentMarkers() {
  const box = document.getElementById("comment-markers");
  box.replaceChildren(...state.comments.filter((c) => !c.deleted || c.replies.length).map((c) => el("button", {
    type: "button", class: `marker comment${state.selected === c.id ? " selected" : ""}`, style: `left:${at(c.t)}`,
    title: `${clock(c.t)} ${c.author.name}: ${c.body}`, dataset: { t: c.t, commentId: c.id },
    onclick: (ev) => { ev.stopPropagation(); selectComment(c.id, true); },
  })));
}

function selectComment(cid, doSeek) {
  state.selected = cid;
  const c = state.comments.find((x) => x.id === cid);
  if (c && doSeek) seek(c.t);
  renderCommentMarkers();
  for (const li of document.querySelectorAll("#comments > li")) li.classList.toggle("selected", Number(li.dataset.commentId) === cid);
  document.querySelector(`#comments > li[data-comment-id="${cid}"]`)?.scrollIntoView({ block: "nearest" });
}

function commentItem(c, reply = false) {
  const may = state.rec?.may || {};
  const me = state.rec?.you || {};
  const head = el("div", { class: "comment-head" },
    reply ? null : el("button", { type: "button", class: "time-link", onclick: () => selectComment(c.id, true), text: clock(c.t) }),
    el("strong", { class: "author", text: c.author.name }),
    el("span", { class: "role", text: roleName(c.author.role) }),
    el("span", { class: "when", text: dateTime(c.created_at) }));
  const body = el("p", { class: c.deleted ? "body deleted" : "body", text: c.deleted ? t("comments.deleted") : c.body });
  const tools = el("div", { class: "comment-tools" });
  if (!c.deleted && (c.mine || me.admin)) {
    tools.append(el("button", { type: "button", class: "link", text: t("comments.delete"), onclick: async () => {
      if (!confirm(t("comments.confirm_delete"))) return;
      await api(`/api/recordings/${encodeURIComponent(id)}/comments/${c.id}`, { method: "DELETE" }).catch(showError);
      await loadComments();
    } }));
  }
  const item = el(reply ? "div" : "li", { class: reply ? "reply" : "comment", dataset: { commentId: c.id, t: c.t } }, head, body, tools);
  if (!reply) {
    const replies = el("div", { class: "replies" }, ...c.replies.map((r) => commentItem(r, true)));
    item.append(replies);
    if (may.write) {
      const form = el("form", { class: "reply-form", hidden: true },
        el("textarea", { rows: 2, maxlength: 2000, placeholder: t("comments.reply_placeholder") }),
        el("button", { type: "submit", class: "secondary", text: t("comments.reply_post") }));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const text = form.querySelector("textarea").value.trim();
        if (!text) return;
        try {
          await api(`/api/recordings/${encodeURIComponent(id)}/comments`, { method: "POST", body: { parent: c.id, body: text } });
          await loadComments();
        } catch (err) {
          showError(err);
        }
      });
      tools.append(el("button", { type: "button", class: "link reply-toggle", text: t("comments.reply"), onclick: () => {
        form.hidden = !form.hidden;
        if (!form.hidden) form.querySelector("textarea").focus();
      } }));
      item.append(form);
    }
  }
  return item;
}

function renderComments() {
  const list = document.getElementById("comments");
  list.replaceChildren(...state.comments.map((c) => commentItem(c)));
  const count = state.comments.reduce((n, c) => n + (c.deleted ? 0 : 1) + c.replies.filter((r) => !r.deleted).length, 0);
  document.getElementById("comment-count").textContent = count ? `(${count})` : "";
  document.getElementById("comments-empty").hidden = state.comments.length > 0;
  renderCommentMarkers();
}

async function loadComments() {
  if (!state.rec?.may?.study) return;
  const data = await api(`/api/recordings/${encodeURIComponent(id)}/comments`);
  state.comments = data.comments;
  renderComments();
}

async function loadEvaluations() {
  if (!state.rec?.may?.study) return;
  state.evaluations = await api(`/api/recordings/${encodeURIComponent(id)}/evaluations`);
  renderRubric();
}

function renderRubric() {
  const panel = document.getElementById("rubric-panel");
  if (!state.evaluations) return;
  panel.hidden = false;
  const form = document.getElementById("rubric-form");
  const mine = state.evaluations.evaluations.find((e) => e.mine);
  if (state.rec.may.write) {
    renderRubricForm(form, state.evaluations.rubric, mine, async (body) => {
      await api(`/api/recordings/${encodeURIComponent(id)}/evaluations/mine`, { method: "PUT", body });
      state.rubricSaved = true;
      await loadEvaluations();
    }, { saved: state.rubricSaved });
    state.rubricSaved = false;
  } else {
    form.replaceChildren(el("p", { class: "muted", text: t("rubric.read_only") }));
  }
  renderEvaluations(document.getElementById("evaluations"), state.evaluations);
}

function renderAnalysisPart() {
  const status = document.getElementById("analysis-status");
  const box = document.getElementById("analysis");
  if (state.analysis) {
    status.textContent = "";
    renderAnalysis(box, state.analysis, { onSeek: (tv) => seek(tv) });
  } else {
    status.textContent = t(`analysis.status.${state.analysisStatus || "pending"}`);
    box.replaceChildren();
  }
}

async function loadAnalysis() {
  try {
    const { status, data } = await api(`/api/recordings/${encodeURIComponent(id)}/analysis`, { accept202: true });
    if (status === 200) {
      state.analysis = data;
      renderAnalysisPart();
      return;
    }
    state.analysisStatus = data.status;
    renderAnalysisPart();
    setTimeout(loadAnalysis, 3000);
  } catch (err) {
    state.analysisStatus = err.status === 409 ? "failed" : "error";
    renderAnalysisPart();
  }
}

function renderHeader() {
  const r = state.rec;
  if (!r) return;
  document.title = `${r.lesson_title} · ${t("app.study")}`;
  document.getElementById("lesson-title").textContent = r.lesson_title;
  const rurals = r.classrooms.filter((c) => c.role === "rural").map((c) => c.name).join("、");
  document.getElementById("lesson-meta").textContent = [
    r.subject && `${t("field.subject")}: ${r.subject}`,
    r.grade && `${t("field.grade")}: ${r.grade}`,
    r.teacher && `${t("field.teacher")}: ${r.teacher}`,
    r.master_school && `${t("field.master_school")}: ${r.master_school}`,
    rurals && `${t("field.rurals")}: ${rurals}`,
    `${t("field.date")}: ${dateTime(r.start)}`,
    r.duration_s && `${t("field.duration")}: ${minutes(r.duration_s)}`,
  ].filter(Boolean).join(" · ");
  document.getElementById("timeline-end").textContent = clock(duration());
  document.getElementById("link-report").href = link(`/recordings/${encodeURIComponent(id)}/report`);
  document.getElementById("link-library").href = link("/recordings");
}

function renderAll() {
  renderHeader();
  renderMarkers();
  renderComments();
  renderRubric();
  renderAnalysisPart();
}

function timelineTime(ev) {
  const rect = timeline.getBoundingClientRect();
  return (Math.min(rect.width, Math.max(0, ev.clientX - rect.left)) / rect.width) * duration();
}

function wire() {
  timeline.addEventListener("click", (ev) => {
    seek(timelineTime(ev));
    document.getElementById("comment-body").focus({ preventScroll: true });
  });
  timeline.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowRight") seek((video.currentTime || 0) + 5);
    if (ev.key === "ArrowLeft") seek((video.currentTime || 0) - 5);
  });
  video.addEventListener("timeupdate", updatePlayhead);
  video.addEventListener("seeked", updatePlayhead);
  video.addEventListener("pause", () => setComposerTime(video.currentTime));
  video.addEventListener("loadedmetadata", () => {
    if (!state.rec?.duration_s) renderAll();
    const start = Number(new URLSearchParams(location.search).get("t"));
    if (start > 0) seek(start);
  });
  document.getElementById("composer").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = document.getElementById("comment-body");
    const body = box.value.trim();
    if (!body) return;
    const button = document.getElementById("btn-comment");
    button.disabled = true;
    try {
      const c = await api(`/api/recordings/${encodeURIComponent(id)}/comments`, { method: "POST", body: { t: state.composerT, body } });
      box.value = "";
      await loadComments();
      selectComment(c.id, false);
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  });
}

async function main() {
  setupPage(renderAll);
  wire();
  try {
    state.rec = await api(`/api/study/recordings/${encodeURIComponent(id)}`);
  } catch (err) {
    document.getElementById("lesson-title").textContent = t("error.title");
    showError(err);
    return;
  }
  if (state.rec.video) {
    video.src = withToken(state.rec.video);
    if (state.rec.poster) video.poster = withToken(state.rec.poster);
  } else {
    video.hidden = true;
    const note = document.getElementById("no-video");
    note.hidden = false;
    note.textContent = t("player.not_ready", { status: t(`status.${state.rec.status}`) });
  }
  document.getElementById("composer").hidden = !state.rec.may.write;
  document.getElementById("comments-panel").hidden = !state.rec.may.study;
  document.getElementById("link-report").hidden = !state.rec.may.study;
  renderAll();
  await Promise.all([loadComments().catch(showError), loadEvaluations().catch(showError)]);
  loadAnalysis();
}

main();
