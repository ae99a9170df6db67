// The printable lesson-study report: the lesson, its events, the analysis, the comments and the
// rubric, laid out for A4 paper (print CSS in study.css). window.print() or the browser's PDF.

import { renderAnalysis } from "./analysis.js";
import { api, clock, dateTime, el, link, minutes, roleName, setupPage, showError } from "./common.js";
import { localName, t } from "./i18n.js";
import { bandRanges, renderEvaluations } from "./rubric.js";

const id = decodeURIComponent(location.pathname.split("/")[2] || "");
let data = null;

function eventText(e, names) {
  const n = (cid) => names[cid] || cid;
  switch (e.event) {
    case "floor":
      return e.classroom ? t("turns.floor_to", { name: n(e.classroom) }) : t("analysis.master_takes_floor");
    case "hand_raised":
      return t("event.hand_raised_by", { name: n(e.classroom) });
    case "courseware":
      return e.on ? t("event.courseware_on") : t("event.courseware_off");
    case "classroom_joined":
      return t("event.joined", { name: n(e.classroom) });
    case "classroom_left":
      return t("event.left", { name: n(e.classroom) });
    default:
      return null;
  }
}

function render() {
  if (!data) return;
  const r = data.recording;
  const names = Object.fromEntries(r.classrooms.map((c) => [c.classroom, c.name]));
  document.title = `${t("report.kicker")} · ${r.lesson_title}`;
  document.getElementById("report-title").textContent = r.lesson_title;
  const facts = [
    [t("field.subject"), data.lesson?.subject || r.subject],
    [t("field.grade"), data.lesson?.grade || r.grade],
    [t("field.teacher"), r.teacher],
    [t("field.master_school"), `${r.master_school} · ${names[r.classrooms[0]?.classroom] || ""}`],
    [t("field.rurals"), r.classrooms.filter((c) => c.role === "rural").map((c) => `${c.name}（${c.school}）`).join("；")],
    [t("field.date"), dateTime(r.start)],
    [t("field.duration"), minutes(r.duration_s || 0)],
    [t("field.recording"), r.id],
  ];
  document.getElementById("report-lesson").replaceChildren(...facts.filter(([, v]) => v).map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))));

  const events = data.markers.map((e) => ({ e, text: eventText(e, names) })).filter((x) => x.text);
  document.querySelector("#report-events .content").replaceChildren(events.length
    ? el("ol", { class: "event-list" }, ...events.map(({ e, text }) => el("li", { class: e.event }, el("span", { class: "time", text: clock(e.t) }), " ", text)))
    : el("p", { class: "empty", text: t("events.none") }));

  const analysisBox = document.querySelector("#report-analysis .content");
  if (data.analysis) renderAnalysis(analysisBox, data.analysis);
  else analysisBox.replaceChildren(el("p", { class: "empty", text: t(`analysis.status.${data.analysis_status}`) }));

  const comments = data.comments.filter((c) => !c.deleted || c.replies.length);
  document.querySelector("#report-comments .content").replaceChildren(comments.length
    ? el("ol", { class: "report-comments" }, ...comments.map((c) => el("li", { dataset: { t: c.t } },
      el("div", { class: "comment-head" }, el("span", { class: "time", text: clock(c.t) }), el("strong", { text: c.author.name }), el("span", { class: "role", text: roleName(c.author.role) })),
      el("p", { class: "body", text: c.deleted ? t("comments.deleted") : c.body }),
      ...c.replies.filter((x) => !x.deleted).map((x) => el("p", { class: "reply" }, el("strong", { text: `${x.author.name}：` }), x.body)))))
    : el("p", { class: "empty", text: t("comments.empty") }));

  const rubricBox = document.querySelector("#report-rubric .content");
  rubricBox.replaceChildren();
  rubricBox.append(el("p", { class: "muted", text: `${data.rubric.dimensions.map((d) => `${localName(d)} ${d.weight}`).join(" · ")}　${bandRanges(data.rubric)}` }));
  const holder = el("div");
  renderEvaluations(holder, { evaluations: data.evaluations, rubric: data.rubric, summary: data.summary }, { notes: true });
  rubricBox.append(holder);
  if (data.summary) {
    rubricBox.append(el("p", { class: "overall", id: "report-overall" }, t("rubric.overall", { total: data.summary.total.toFixed(1), band: localName(data.summary.band), n: data.summary.count })));
  }
  document.getElementById("report-foot").textContent = t("report.generated", { when: dateTime(data.generated_at), who: data.you.name });
  const waiting = data.analysis_status === "pending" || data.analysis_status === "running";
  document.getElementById("report").setAttribute("aria-busy", waiting ? "true" : "false");
  if (!waiting) document.body.dataset.ready = "1";
}

async function main() {
  setupPage(render);
  document.getElementById("btn-print").addEventListener("click", () => window.print());
  document.getElementById("link-back").href = link(`/recordings/${encodeURIComponent(id)}`);
  await load();
}

/** Fetch the report's data; while the analysis is still being computed, look again every few seconds. */
async function load() {
  try {
    data = await api(`/api/study/report/${encodeURIComponent(id)}`);
  } catch (err) {
    document.getElementById("report-title").textContent = t("error.title");
    showError(err);
    return;
  }
  render();
  if (data.analysis_status === "pending" || data.analysis_status === "running") setTimeout(load, 3000);
}

main();
