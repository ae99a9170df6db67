// The patrol wall (巡课): every live lesson as a small tile that joins as an observer and repaints
// its cameras about once a second, and a warning tile for each lesson the timetable says should be
// live now but is not. Clicking a tile opens the lesson page as an observer. A tile subscribes in
// patrol mode: the server sends it the cameras' keyframes only (one every few seconds), not full streams.

import { Subscriber, rtcConfiguration } from "/static/js/peer.js";
import { Signaling } from "/static/js/signaling.js";
import { api, el, link, setupPage, showError } from "./common.js";
import { t } from "./i18n.js";

const REFRESH_MS = 8000;
const query = new URLSearchParams(location.search);
const PAINT_MS = 1000 / Math.min(5, Math.max(0.2, Number(query.get("fps")) || 1));
const tiles = new Map(); // lesson id -> LiveTile
let wall = null;

class LiveTile {
  constructor(info, iceServers) {
    this.info = info;
    this.iceServers = iceServers;
    this.state = "connecting";
    this.videos = new Map(); // classroom id -> <video>
    this.paints = 0;
    this.canvas = el("canvas", { width: 320, height: 180, class: "tile-canvas" });
    this.badge = el("span", { class: "tile-state" });
    this.rooms = el("ul", { class: "tile-rooms" });
    this.meta = el("p", { class: "tile-meta" });
    this.title = el("h2", { class: "tile-title" });
    this.watch = el("a", { class: "tile-watch", target: "_blank", rel: "noopener" }, this.canvas, el("span", { class: "tile-watch-label", "data-i18n": "patrol.watch" }));
    this.node = el("article", { class: "tile live", dataset: { lesson: info.lesson } }, el("header", {}, this.title, this.badge), this.watch, this.meta, this.rooms);
    this.update(info);
    this.setState("connecting");
  }

  update(info) {
    this.info = info;
    this.title.textContent = info.title;
    this.title.title = info.lesson;
    this.watch.href = `/lesson/${encodeURIComponent(info.lesson)}?token=${encodeURIComponent(info.token)}`;
    this.watch.title = t("patrol.watch");
    this.meta.textContent = [info.teacher, info.subject, t("patrol.connected_of", { n: info.connected, of: info.expected }),
      info.hands ? t("patrol.hands", { n: info.hands }) : null].filter(Boolean).join(" · ");
    this.rooms.replaceChildren(...info.classrooms.map((c) => el("li", { class: c.connected ? "on" : "off", dataset: { classroom: c.id, connected: c.connected ? "1" : "0" } },
      el("i", { class: "dot" }), c.name, c.role === "master" ? el("span", { class: "muted", text: ` (${t("role.master")})` }) : null,
      info.floor === c.id ? el("span", { class: "floor-badge", text: t("patrol.floor") }) : null)));
  }

  setState(state) {
    this.state = state;
    this.node.dataset.state = state;
    this.badge.textContent = t(`patrol.state.${state}`);
  }

  async start() {
    this.sig = new Signaling();
    this.sig.on("disconnect", () => this.setState("closed"));
    this.sig.on("kicked", () => this.setState("closed"));
    const connected = new Promise((resolve, reject) => {
      this.sig.on("connect", resolve);
      this.sig.on("connect_error", reject);
    });
    this.sig.connect();
    try {
      await connected;
      await this.sig.call("join", { token: this.info.token });
      this.sub = new Subscriber(this.sig, rtcConfiguration(this.iceServers), {
        onState: (s) => this.setState(s === "connected" ? "connected" : s === "failed" || s === "closed" ? "failed" : this.state),
        onTrack: (mid, track) => this.onTrack(mid, track),
        mode: "patrol", // cameras only, keyframes only: the server forwards a picture every few seconds
      });
      await this.sub.start((slots) => {
        this.slots = slots;
      });
    } catch (err) {
      console.warn("patrol tile", this.info.lesson, err);
      this.setState("failed");
    }
    this.timer = setInterval(() => this.paint(), PAINT_MS);
  }

  onTrack(mid, track) {
    const slot = (this.slots || []).find((s) => s.mid === mid);
    if (!slot || slot.kind !== "video" || slot.source !== "camera") return; // sound and courseware stay off the wall
    const video = el("video", { muted: true, playsinline: true, autoplay: true });
    video.muted = true;
    video.srcObject = new MediaStream([track]);
    document.getElementById("sinks").append(video);
    video.play().catch(() => {});
    this.videos.set(slot.group, video);
  }

  paint() {
    const ctx = this.canvas.getContext("2d");
    const { width: W, height: H } = this.canvas;
    ctx.fillStyle = "#1b2631";
    ctx.fillRect(0, 0, W, H);
    const master = this.videos.get(this.info.classrooms[0]?.id);
    const ready = (v) => v && v.readyState >= 2 && v.videoWidth > 0;
    const rurals = this.info.classrooms.slice(1).map((c) => this.videos.get(c.id)).filter(ready);
    const mainH = rurals.length ? H * 0.72 : H;
    let drew = false;
    if (ready(master)) {
      ctx.drawImage(master, 0, 0, W, mainH);
      drew = true;
    }
    const tw = W / Math.max(4, rurals.length);
    rurals.forEach((v, i) => {
      ctx.drawImage(v, i * tw, mainH, tw - 2, H - mainH);
      drew = true;
    });
    if (drew) {
      this.paints += 1;
      this.node.dataset.paints = String(this.paints);
    }
  }

  close() {
    clearInterval(this.timer);
    try {
      this.sub?.close();
      this.sig?.disconnect();
    } catch {
      // already closed
    }
    for (const v of this.videos.values()) v.remove();
    this.node.remove();
  }
}

function missingTile(m) {
  return el("article", { class: "tile missing", dataset: { lesson: m.lesson }, role: "alert" },
    el("header", {}, el("h2", { class: "tile-title", text: m.title }), el("span", { class: "tile-state warn", text: t("patrol.missing") })),
    el("p", { class: "warning-text", text: t("patrol.missing_text", { start: m.planned_start.slice(11, 16), end: (m.planned_end || "").slice(11, 16), late: Math.round(m.minutes_late) }) }),
    el("p", { class: "tile-meta", text: [m.teacher, m.subject].filter(Boolean).join(" · ") }),
    el("ul", { class: "tile-rooms" }, ...m.classrooms.map((c) => el("li", { class: "off" }, el("i", { class: "dot" }), c.name, c.school ? el("span", { class: "muted", text: ` · ${c.school}` }) : null))));
}

function render() {
  if (!wall) return;
  const box = document.getElementById("wall");
  const missing = wall.missing.map(missingTile);
  for (const node of box.querySelectorAll(".tile.missing")) node.remove();
  box.prepend(...missing);
  for (const tile of tiles.values()) {
    tile.update(tile.info);
    tile.setState(tile.state);
    if (!tile.node.isConnected) box.append(tile.node);
  }
  for (const node of box.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.getElementById("patrol-summary").textContent = t("patrol.summary", { live: wall.live.length, missing: wall.missing.length });
  document.getElementById("patrol-summary").classList.toggle("alarm", wall.missing.length > 0);
  document.getElementById("wall-empty").hidden = wall.live.length + wall.missing.length > 0;
  document.getElementById("patrol-updated").textContent = t("patrol.updated", { time: new Date().toLocaleTimeString() });
}

async function refresh() {
  const county = document.getElementById("county").value.trim();
  try {
    wall = await api(`/api/patrol${county ? `?county=${encodeURIComponent(county)}` : ""}`);
    document.getElementById("error").hidden = true;
  } catch (err) {
    showError(err);
    return;
  }
  const live = new Set(wall.live.map((l) => l.lesson));
  for (const [lessonId, tile] of tiles) {
    if (!live.has(lessonId) || tile.state === "failed" || tile.state === "closed") {
      tile.close();
      tiles.delete(lessonId);
    }
  }
  for (const info of wall.live) {
    const tile = tiles.get(info.lesson);
    if (tile) tile.update(info);
    else {
      const created = new LiveTile(info, wall.ice_servers || []);
      tiles.set(info.lesson, created);
      created.start();
    }
  }
  render();
}

function main() {
  setupPage(render);
  document.getElementById("link-library").href = link("/recordings");
  const county = document.getElementById("county");
  county.value = query.get("county") || "";
  county.addEventListener("change", refresh);
  refresh();
  setInterval(refresh, REFRESH_MS);
}

main();
