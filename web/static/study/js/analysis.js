// The classroom analysis as the recording page and the printed report show it (data: recorder/analysis.py).

import { PALETTE, barChart, rtChMap, speechTimeline, stCurve } from "./charts.js";
import { clock, el, minutes, percent } from "./common.js";
import { t } from "./i18n.js";

export function colorOf(analysis, classroom) {
  const i = analysis.classrooms.findIndex((c) => c.id === classroom);
  return PALETTE[Math.max(0, i) % PALETTE.length];
}

export function nameOf(analysis, classroom) {
  if (classroom === null || classroom === undefined) return t("analysis.master_takes_floor");
  const c = analysis.classrooms.find((x) => x.id === classroom);
  return c ? c.name : classroom;
}

export function lessonTypeName(type) {
  return type ? t(`st.type.${type}`) : t("analysis.none");
}

function stat(label, value, key) {
  return el("div", { class: "stat", dataset: key ? { stat: key } : {} }, el("span", { class: "stat-label", text: label }), el("strong", { class: "stat-value", text: value }));
}

/** Fill `root` with the analysis sections; `onSeek(t)` (optional) makes times clickable. */
export function renderAnalysis(root, a, { onSeek } = {}) {
  root.replaceChildren();
  const timeLink = (tv) =>
    onSeek ? el("button", { type: "button", class: "time-link", onclick: () => onSeek(tv), text: clock(tv) }) : el("span", { class: "time", text: clock(tv) });

  // 1. speaking time
  const speaking = el("section", { class: "analysis-part", id: "speaking" }, el("h3", { text: t("analysis.speaking") }));
  speaking.append(
    barChart(
      a.classrooms.map((c) => ({
        label: `${c.name}${c.role === "master" ? ` (${t("role.master")})` : ""}`,
        value: c.percent_of_lesson,
        text: `${minutes(c.speaking_s)} · ${percent(c.percent_of_lesson)}`,
        color: colorOf(a, c.id),
      })),
      { max: 100, label: t("analysis.speaking") },
    ),
  );
  const table = el("table", { class: "data speaking-table" },
    el("thead", {}, el("tr", {}, ...["analysis.classroom", "analysis.speaking_time", "analysis.of_lesson", "analysis.of_speech", "analysis.turns"].map((k) => el("th", { text: t(k) })))),
    el("tbody", {}, ...a.classrooms.map((c) => el("tr", { dataset: { classroom: c.id } },
      el("td", { text: c.name }), el("td", { text: minutes(c.speaking_s) }), el("td", { class: "num percent-lesson", text: percent(c.percent_of_lesson, 1) }),
      el("td", { class: "num", text: percent(c.percent_of_speech, 1) }), el("td", { class: "num", text: String(c.turns) })))));
  speaking.append(table, el("p", { class: "note", text: t("analysis.vad_note") }));
  root.append(speaking);

  // 2. S-T
  const st = a.st;
  const stPart = el("section", { class: "analysis-part", id: "st" }, el("h3", { text: t("st.title") }));
  stPart.append(
    el("div", { class: "stats" },
      stat(t("st.type"), lessonTypeName(st.type), "type"),
      stat("Rt", st.rt.toFixed(2), "rt"),
      stat("Ch", st.ch.toFixed(2), "ch"),
      stat(t("st.samples"), t("st.samples_value", { n: st.n, interval: st.interval_s, t: st.n_t, s: st.n_s }), "n")),
  );
  const charts = el("div", { class: "chart-row" });
  const labels = { title: t("st.curve"), s: t("st.axis_s"), t: t("st.axis_t"), practice: t("st.type.practice"), lecture: t("st.type.lecture"), dialogue: t("st.type.dialogue"), mixed: t("st.type.mixed") };
  charts.append(
    el("figure", {}, stCurve(st.curve, { labels }), el("figcaption", { text: t("st.curve") })),
    el("figure", {}, rtChMap(st.n ? st.rt : null, st.ch, st.thresholds, { labels: { ...labels, title: t("st.map") } }), el("figcaption", { text: t("st.map") })),
  );
  stPart.append(charts);
  stPart.append(el("p", { class: "note approximation", text: t("st.approximation", { interval: st.interval_s, window: st.window_s }) }));
  stPart.append(el("p", { class: "note", text: t("st.thresholds") }));
  root.append(stPart);

  // 3. who spoke when, floor changes, exchanges
  const turns = a.turns;
  const turnPart = el("section", { class: "analysis-part", id: "turns" }, el("h3", { text: t("turns.title") }));
  turnPart.append(el("div", { class: "stats" }, stat(t("turns.count"), String(turns.count), "turns"), stat(t("turns.exchanges"), String(turns.exchanges), "exchanges")));
  const markers = (a.markers || []).filter((m) => m.event === "floor" || m.event === "hand_raised").map((m) => ({
    t: m.t, event: m.event,
    label: m.event === "floor" ? `${clock(m.t)} ${t("event.floor")}: ${nameOf(a, m.classroom)}` : `${clock(m.t)} ${t("event.hand_raised")}: ${nameOf(a, m.classroom)}`,
  }));
  turnPart.append(
    speechTimeline(a.duration_s, a.classrooms.map((c) => ({ label: c.name, segments: c.segments, color: colorOf(a, c.id) })), {
      samples: st.samples, markers, labels: { title: t("turns.timeline"), samples: t("st.samples_lane") },
    }),
  );
  if (turns.per_rural.length) {
    turnPart.append(
      el("table", { class: "data rural-share" },
        el("thead", {}, el("tr", {}, ...["analysis.classroom", "turns.share", "analysis.speaking_time", "analysis.turns", "turns.exchanges_with_master"].map((k) => el("th", { text: t(k) })))),
        el("tbody", {}, ...turns.per_rural.map((r) => el("tr", { dataset: { classroom: r.id } },
          el("td", { text: r.name }), el("td", { class: "num", text: percent(100 * r.share, 1) }), el("td", { text: minutes(r.speaking_s) }),
          el("td", { class: "num", text: String(r.turns) }), el("td", { class: "num", text: String(r.exchanges) }))))),
    );
  }
  const floors = a.floor_changes || [];
  turnPart.append(el("h4", { text: t("turns.floor_changes") }));
  turnPart.append(floors.length
    ? el("ol", { class: "floor-list" }, ...floors.map((f) => el("li", {}, timeLink(f.t), " ", f.classroom ? t("turns.floor_to", { name: nameOf(a, f.classroom) }) : t("analysis.master_takes_floor"))))
    : el("p", { class: "empty", text: t("turns.no_floor") }));
  root.append(turnPart);

  // 4. hands
  const h = a.hands;
  const handPart = el("section", { class: "analysis-part", id: "hands" }, el("h3", { text: t("hands.title") }));
  handPart.append(el("div", { class: "stats" },
    stat(t("hands.raised"), String(h.raised), "raised"),
    stat(t("hands.answered"), String(h.answered), "answered"),
    stat(t("hands.mean_wait"), h.mean_wait_s === null ? "—" : t("unit.seconds", { n: h.mean_wait_s.toFixed(1) }), "wait"),
    stat(t("hands.unanswered"), String(h.unanswered + h.lowered), "unanswered")));
  if (h.items.length) {
    handPart.append(el("table", { class: "data hands-table" },
      el("thead", {}, el("tr", {}, ...["hands.when", "analysis.classroom", "hands.outcome", "hands.wait"].map((k) => el("th", { text: t(k) })))),
      el("tbody", {}, ...h.items.map((i) => el("tr", {}, el("td", {}, timeLink(i.raised_t)), el("td", { text: i.name }),
        el("td", { text: t(`hands.outcome.${i.outcome}`) }), el("td", { class: "num", text: i.wait_s === null ? "—" : t("unit.seconds", { n: i.wait_s.toFixed(1) }) }))))));
  }
  handPart.append(el("p", { class: "note", text: t("hands.note") }));
  root.append(handPart);
}
