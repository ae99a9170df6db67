// The recordings library: filter by subject, grade, school, teacher, classroom, county and date;
// each recording links to its study page (player, comments, rubric, analysis).

import { api, dateTime, el, link, minutes, setupPage, showError } from "./common.js";
import { t } from "./i18n.js";

const FIELDS = ["subject", "grade", "school", "teacher", "classroom", "county", "from", "to"];
const form = document.getElementById("filters");
let last = null;

function params() {
  const out = {};
  for (const f of FIELDS) {
    const v = form.elements[f].value.trim();
    if (v) out[f] = v;
  }
  return out;
}

function fillFacets(facets) {
  const lists = { subjects: facets.subject, grades: facets.grade, schools: facets.schools, teachers: facets.teacher, counties: facets.counties };
  for (const [idName, values] of Object.entries(lists)) {
    document.getElementById(idName).replaceChildren(...(values || []).map((v) => el("option", { value: v })));
  }
}

function render() {
  if (!last) return;
  const list = document.getElementById("recordings");
  document.getElementById("result-count").textContent = t("library.count", { n: last.recordings.length });
  document.getElementById("load-more").hidden = !last.more;
  list.replaceChildren(...last.recordings.map((r) => {
    const rurals = r.classrooms.filter((c) => c.role === "rural").map((c) => c.name).join("、");
    return el("li", { class: "recording-card", dataset: { recording: r.id, status: r.status } },
      el("a", { class: "title", href: link(`/recordings/${encodeURIComponent(r.id)}`), text: r.lesson_title || r.title }),
      el("p", { class: "meta" }, [r.subject, r.grade && t("library.grade", { grade: r.grade }), r.teacher, r.master_school].filter(Boolean).join(" · ")),
      el("p", { class: "meta" }, `${t("field.rurals")}: ${rurals}`),
      el("p", { class: "meta" }, [dateTime(r.start), r.duration_s ? minutes(r.duration_s) : null, t(`status.${r.status}`)].filter(Boolean).join(" · ")),
      el("p", { class: "counts" }, el("span", { class: "n-comments", text: t("library.comments", { n: r.comments }) }), " · ",
        el("span", { class: "n-evaluations", text: t("library.evaluations", { n: r.evaluations }) })));
  }));
  if (!last.recordings.length) list.append(el("li", { class: "empty", text: t("library.none") }));
  const you = last.you;
  const patrol = document.getElementById("link-patrol");
  patrol.hidden = !you.may_patrol;
  patrol.href = link("/patrol");
  const reports = document.getElementById("link-reports");
  reports.hidden = !you.may_report;
  reports.href = link("/reports");
}

async function loadMore() {
  const p = { ...params(), offset: String(last.recordings.length) };
  try {
    const page = await api(`/api/study/recordings?${new URLSearchParams(p)}`);
    last = { ...page, recordings: [...last.recordings, ...page.recordings] };
    render();
  } catch (err) {
    showError(err);
  }
}

async function search() {
  const p = params();
  const url = new URL(location.href);
  for (const f of FIELDS) {
    if (p[f]) url.searchParams.set(f, p[f]);
    else url.searchParams.delete(f);
  }
  history.replaceState(null, "", url);
  try {
    last = await api(`/api/study/recordings?${new URLSearchParams(p)}`);
    fillFacets(last.facets);
    render();
  } catch (err) {
    showError(err);
  }
}

function main() {
  setupPage(render);
  const q = new URLSearchParams(location.search);
  for (const f of FIELDS) if (q.get(f)) form.elements[f].value = q.get(f);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    search();
  });
  form.addEventListener("reset", () => setTimeout(search, 0));
  document.getElementById("load-more").addEventListener("click", loadMore);
  search();
}

main();
