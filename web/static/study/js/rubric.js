// The evaluation rubric: a form (score 0-100 and a note per dimension, an overall note) with the
// weighted total and its band computed as you type, and the table of everyone's evaluations.

import { dateTime, el, roleName, showError } from "./common.js";
import { localName, t } from "./i18n.js";

export function weightedTotal(rubric, scores) {
  let sum = 0;
  let weights = 0;
  for (const d of rubric.dimensions) {
    const v = scores[d.key];
    if (typeof v !== "number" || Number.isNaN(v)) return null;
    sum += d.weight * v;
    weights += d.weight;
  }
  return weights ? Math.round((10 * sum) / weights) / 10 : null;
}

export function bandOf(rubric, total) {
  return rubric.bands.find((b) => total >= b.min_score) || rubric.bands[rubric.bands.length - 1];
}

export function bandRanges(rubric) {
  return rubric.bands.map((b, i) => {
    const upper = i === 0 ? 100 : rubric.bands[i - 1].min_score - 1;
    return `${localName(b)} ${b.min_score === 0 ? `< ${rubric.bands[i - 1]?.min_score ?? 60}` : `${b.min_score}–${upper}`}`;
  }).join(" · ");
}

/** The form; `save(body)` stores it (throws on refusal). `mine`: my saved evaluation, to edit. */
export function renderRubricForm(form, rubric, mine, save, { saved = false } = {}) {
  form.replaceChildren();
  const inputs = {};
  const weightSum = rubric.dimensions.reduce((n, d) => n + d.weight, 0);
  const table = el("table", { class: "data rubric-table" },
    el("thead", {}, el("tr", {}, el("th", { text: t("rubric.dimension") }), el("th", { class: "num", text: t("rubric.weight") }),
      el("th", { text: t("rubric.score") }), el("th", { text: t("rubric.note") }))));
  const body = el("tbody");
  for (const d of rubric.dimensions) {
    const saved = mine?.scores?.[d.key];
    const score = el("input", { type: "number", min: 0, max: 100, step: 1, required: true, name: `score-${d.key}`, value: saved ? saved.score : "", "aria-label": localName(d) });
    const note = el("textarea", { rows: 1, maxlength: 2000, name: `note-${d.key}`, "aria-label": `${localName(d)} ${t("rubric.note")}` });
    note.value = saved ? saved.note : "";
    inputs[d.key] = { score, note };
    body.append(el("tr", { dataset: { dimension: d.key } }, el("th", { scope: "row", text: localName(d) }),
      el("td", { class: "num", text: `${Math.round((100 * d.weight) / weightSum)}%` }), el("td", {}, score), el("td", {}, note)));
  }
  table.append(body);
  const overallNote = el("textarea", { rows: 3, maxlength: 2000, name: "overall-note", placeholder: t("rubric.overall_note") });
  overallNote.value = mine?.note || "";
  const total = el("strong", { class: "total", id: "rubric-total" });
  const band = el("span", { class: "band", id: "rubric-band" });
  const status = el("span", { class: "saved", id: "rubric-saved", text: saved ? t("rubric.saved") : "" });
  const button = el("button", { type: "submit", class: "primary", text: mine ? t("rubric.update") : t("rubric.save") });
  const values = () => Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.score.value === "" ? NaN : Number(i.score.value)]));
  const refresh = () => {
    const v = weightedTotal(rubric, values());
    total.textContent = v === null ? "—" : v.toFixed(1);
    const b = v === null ? null : bandOf(rubric, v);
    band.textContent = b ? localName(b) : "";
    band.dataset.band = b ? b.key : "";
  };
  form.oninput = () => {
    refresh();
    status.textContent = "";
  };
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const scores = {};
    for (const [k, i] of Object.entries(inputs)) scores[k] = { score: Number(i.score.value), note: i.note.value };
    button.disabled = true;
    try {
      await save({ scores, note: overallNote.value }); // re-renders the form, saying it is saved
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  };
  form.append(table, overallNote,
    el("div", { class: "row rubric-result" }, el("span", { text: t("rubric.total") }), total, band, el("span", { class: "muted", text: bandRanges(rubric) })),
    el("div", { class: "row" }, status, button));
  refresh();
}

/** Everyone's evaluations: one row per evaluator, one column per dimension, and the mean. */
export function renderEvaluations(root, data, { notes = false } = {}) {
  root.replaceChildren();
  const { evaluations, rubric, summary } = data;
  if (!evaluations.length) {
    root.append(el("p", { class: "empty", text: t("rubric.none") }));
    return;
  }
  const dims = rubric.dimensions;
  const head = el("tr", {}, el("th", { text: t("rubric.evaluator") }), ...dims.map((d) => el("th", { class: "num", text: localName(d) })),
    el("th", { class: "num", text: t("rubric.total") }), el("th", { text: t("rubric.band") }));
  const rows = evaluations.map((e) => el("tr", { class: e.mine ? "mine" : "", dataset: { evaluator: e.author.name } },
    el("td", {}, el("strong", { text: e.author.name }), " ", el("span", { class: "muted", text: roleName(e.author.role) })),
    ...dims.map((d) => el("td", { class: "num", text: e.scores[d.key] ? String(e.scores[d.key].score) : "—" })),
    el("td", { class: "num total", text: e.total.toFixed(1) }), el("td", { class: "band", dataset: { band: e.band.key }, text: localName(e.band) })));
  if (summary && evaluations.length > 1) {
    rows.push(el("tr", { class: "summary" }, el("td", { text: t("rubric.mean", { n: summary.count }) }),
      ...dims.map((d) => el("td", { class: "num", text: summary.dimensions[d.key] !== undefined ? summary.dimensions[d.key].toFixed(1) : "—" })),
      el("td", { class: "num total", text: summary.total.toFixed(1) }), el("td", { class: "band", dataset: { band: summary.band.key }, text: localName(summary.band) })));
  }
  root.append(el("div", { class: "table-scroll" }, el("table", { class: "data evaluations" }, el("thead", {}, head), el("tbody", {}, ...rows))));
  if (notes) {
    for (const e of evaluations) {
      const items = dims.filter((d) => e.scores[d.key]?.note).map((d) => el("li", {}, el("strong", { text: `${localName(d)}：` }), e.scores[d.key].note));
      if (!items.length && !e.note) continue;
      root.append(el("div", { class: "evaluation-notes" }, el("h4", { text: `${e.author.name} · ${dateTime(e.updated_at)}` }),
        items.length ? el("ul", {}, ...items) : null, e.note ? el("p", { text: `${t("rubric.overall_note")}：${e.note}` }) : null));
    }
  }
}
