// Hand-drawn SVG charts for the analysis, the report and usage (no chart library; they print crisply).
// Every function returns an <svg> element sized by its viewBox, so CSS decides the width.

const NS = "http://www.w3.org/2000/svg";

export const PALETTE = ["#c0392b", "#2471a3", "#229954", "#b9770e", "#7d3c98", "#138d75", "#a04000", "#2e4053", "#d35400"];

function svg(width, height, cls) {
  const root = document.createElementNS(NS, "svg");
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.setAttribute("class", `chart ${cls || ""}`.trim());
  root.setAttribute("role", "img");
  return root;
}

function add(parent, tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}

function title(node, text) {
  add(node, "title", {}, text);
}

/** Horizontal bars: items [{label, value, text, color}], scaled to `max` (default: the largest). */
export function barChart(items, { max, width = 640, label = "" } = {}) {
  const row = 28;
  const left = 250;
  const right = 90;
  const height = Math.max(1, items.length) * row + 10;
  const root = svg(width, height, "bars");
  if (label) title(root, label);
  const top = max || Math.max(1e-9, ...items.map((i) => i.value));
  items.forEach((item, i) => {
    const y = 5 + i * row;
    const w = Math.max(0, ((width - left - right) * item.value) / top);
    add(root, "text", { x: left - 8, y: y + row / 2 + 4, "text-anchor": "end", class: "label" }, item.label);
    add(root, "rect", { x: left, y: y + 4, width: width - left - right, height: row - 8, class: "track" });
    const bar = add(root, "rect", { x: left, y: y + 4, width: w, height: row - 8, fill: item.color || PALETTE[i % PALETTE.length], class: "bar" });
    title(bar, `${item.label}: ${item.text}`);
    add(root, "text", { x: left + w + 6, y: y + row / 2 + 4, class: "value" }, item.text);
  });
  return root;
}

/** The S-T diagram: cumulative S (x) against cumulative T (y), one step per sample. */
export function stCurve(curve, { labels }) {
  const n = Math.max(1, curve.length - 1);
  const size = 260;
  const pad = 36;
  const root = svg(size + pad + 10, size + pad + 10, "st-curve");
  title(root, labels.title);
  const sx = (s) => pad + (s / n) * size;
  const sy = (tv) => 10 + size - (tv / n) * size;
  add(root, "rect", { x: pad, y: 10, width: size, height: size, class: "frame" });
  for (let k = 0; k <= 4; k++) {
    const v = Math.round((n * k) / 4);
    add(root, "line", { x1: sx(v), y1: 10, x2: sx(v), y2: 10 + size, class: "grid" });
    add(root, "line", { x1: pad, y1: sy(v), x2: pad + size, y2: sy(v), class: "grid" });
    add(root, "text", { x: sx(v), y: size + 26, "text-anchor": "middle", class: "tick" }, String(v));
    add(root, "text", { x: pad - 6, y: sy(v) + 4, "text-anchor": "end", class: "tick" }, String(v));
  }
  add(root, "line", { x1: sx(0), y1: sy(0), x2: sx(n), y2: sy(n), class: "diagonal" });
  const points = curve.map(([s, tv]) => `${sx(s).toFixed(1)},${sy(tv).toFixed(1)}`).join(" ");
  add(root, "polyline", { points, class: "curve" });
  add(root, "text", { x: pad + size / 2, y: size + pad + 6, "text-anchor": "middle", class: "axis" }, labels.s);
  add(root, "text", { x: 12, y: 10 + size / 2, "text-anchor": "middle", class: "axis", transform: `rotate(-90 12 ${10 + size / 2})` }, labels.t);
  return root;
}

/** The Rt-Ch plane with the four lesson types as regions, and this lesson as a point. */
export function rtChMap(rt, ch, thresholds, { labels }) {
  const size = 260;
  const pad = 52;
  const root = svg(size + pad + 10, size + pad + 10, "rt-ch");
  title(root, labels.title);
  const X = (v) => pad + v * size;
  const Y = (v) => 10 + size - v * size;
  const lo = thresholds.rt_low;
  const hi = thresholds.rt_high;
  const chd = thresholds.ch_dialogue;
  const region = (x0, y0, x1, y1, cls, text) => {
    add(root, "rect", { x: X(x0), y: Y(y1), width: X(x1) - X(x0), height: Y(y0) - Y(y1), class: `region ${cls}` });
    add(root, "text", { x: (X(x0) + X(x1)) / 2, y: (Y(y0) + Y(y1)) / 2 + 4, "text-anchor": "middle", class: "region-label" }, text);
  };
  region(0, 0, lo, 1, "practice", labels.practice);
  region(hi, 0, 1, 1, "lecture", labels.lecture);
  region(lo, chd, hi, 1, "dialogue", labels.dialogue);
  region(lo, 0, hi, chd, "mixed", labels.mixed);
  add(root, "rect", { x: pad, y: 10, width: size, height: size, class: "frame" });
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    add(root, "text", { x: X(v), y: size + 26, "text-anchor": "middle", class: "tick" }, v.toFixed(2));
    add(root, "text", { x: pad - 6, y: Y(v) + 4, "text-anchor": "end", class: "tick" }, v.toFixed(2));
  }
  if (rt !== null && rt !== undefined) {
    const dot = add(root, "circle", { cx: X(rt), cy: Y(Math.min(1, ch)), r: 7, class: "point" });
    title(dot, `Rt ${rt.toFixed(2)}, Ch ${ch.toFixed(2)}`);
  }
  add(root, "text", { x: pad + size / 2, y: size + pad + 6, "text-anchor": "middle", class: "axis" }, "Rt");
  add(root, "text", { x: 8, y: 10 + size / 2, "text-anchor": "middle", class: "axis", transform: `rotate(-90 8 ${10 + size / 2})` }, "Ch");
  return root;
}

/** Who spoke when: one lane per classroom with its speech, S-T samples along the top, event ticks. */
export function speechTimeline(duration, lanes, { samples = [], markers = [], labels, width = 760 }) {
  const left = 150;
  const lane = 22;
  const top = samples.length ? 26 : 6;
  const height = top + lanes.length * lane + 28;
  const root = svg(width, height, "speech-timeline");
  title(root, labels.title);
  const span = Math.max(1, duration);
  const X = (tv) => left + (Math.min(span, Math.max(0, tv)) / span) * (width - left - 10);
  if (samples.length) {
    add(root, "text", { x: left - 8, y: 17, "text-anchor": "end", class: "label" }, labels.samples);
    for (const s of samples) {
      const mark = add(root, "rect", { x: X(s.t) - 5, y: 6, width: 10, height: 14, class: `sample ${s.code === "T" ? "t" : "s"}` });
      title(mark, `${s.code} @ ${Math.round(s.t)} s`);
    }
  }
  lanes.forEach((ln, i) => {
    const y = top + i * lane;
    add(root, "text", { x: left - 8, y: y + lane / 2 + 4, "text-anchor": "end", class: "label" }, ln.label);
    add(root, "rect", { x: left, y: y + 3, width: width - left - 10, height: lane - 6, class: "track" });
    for (const [a, b] of ln.segments) {
      add(root, "rect", { x: X(a), y: y + 3, width: Math.max(0.8, X(b) - X(a)), height: lane - 6, fill: ln.color, class: "speech" });
    }
  });
  const bottom = top + lanes.length * lane;
  for (const m of markers) {
    const tick = add(root, "line", { x1: X(m.t), y1: top, x2: X(m.t), y2: bottom, class: `event ${m.event}` });
    title(tick, m.label || m.event);
  }
  const step = niceStep(span);
  for (let v = 0; v <= span + 1e-6; v += step) {
    add(root, "text", { x: X(v), y: bottom + 18, "text-anchor": "middle", class: "tick" }, clockLabel(v));
  }
  return root;
}

/** Vertical bars for usage: groups [{label, values: [..]}], series [{name, color, max}]; values drawn side by side. */
export function columnChart(groups, series, { width = 760, height = 240, labels = {} } = {}) {
  const left = 40;
  const bottom = 60;
  const root = svg(width, height, "columns");
  if (labels.title) title(root, labels.title);
  const plotH = height - bottom - 10;
  const gw = (width - left - 10) / Math.max(1, groups.length);
  const bw = Math.min(28, (gw - 8) / series.length);
  add(root, "line", { x1: left, y1: 10 + plotH, x2: width - 10, y2: 10 + plotH, class: "axis-line" });
  if (series.length > 1) {
    series.forEach((s, k) => {
      add(root, "rect", { x: width - 200, y: 8 + k * 16, width: 10, height: 10, fill: s.color });
      add(root, "text", { x: width - 185, y: 17 + k * 16, class: "label" }, s.name);
    });
  }
  groups.forEach((g, i) => {
    const x0 = left + i * gw + (gw - bw * series.length) / 2;
    series.forEach((s, k) => {
      const v = g.values[k] ?? 0;
      const max = s.max || Math.max(1e-9, ...groups.map((gg) => gg.values[k] ?? 0));
      const h = (plotH * v) / max;
      const bar = add(root, "rect", { x: x0 + k * bw, y: 10 + plotH - h, width: bw - 2, height: h, fill: s.color, class: "bar" });
      title(bar, `${g.label} · ${s.name}: ${s.format ? s.format(v) : v}`);
      add(root, "text", { x: x0 + k * bw + (bw - 2) / 2, y: 10 + plotH - h - 3, "text-anchor": "middle", class: "value small" }, s.format ? s.format(v) : String(v));
    });
    const lx = left + i * gw + gw / 2;
    add(root, "text", { x: lx, y: 10 + plotH + 16, "text-anchor": "end", class: "label", transform: `rotate(-30 ${lx} ${10 + plotH + 16})` }, g.label);
  });
  return root;
}

function niceStep(span) {
  const target = span / 8;
  for (const s of [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800]) if (s >= target) return s;
  return 3600;
}

function clockLabel(v) {
  const s = Math.round(v);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
