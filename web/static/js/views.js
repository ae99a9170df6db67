// The page's DOM: top bar, video tiles (one large "stage" + a strip), side panels (own preview,
// the floor, the hand-raise queue), toolbar, device settings, banners, toasts.
// It renders whatever computeLayout() decides and calls back `actions` on clicks.

import { t, translateTree, onLanguageChange } from "./i18n.js";
import { computeLayout, waited, classroomName } from "./layout.js";
import { formatLoss, formatRate, formatRtt } from "./stats.js";
import { linkLine, tierTitle } from "./link.js";

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) el.append(child);
  return el;
}

function classroomIn(lesson, id) {
  return Boolean(lesson && (lesson.master?.id === id || (lesson.rurals || []).some((c) => c.id === id)));
}

function statsLine(key, q) {
  if (!q) return t("stats.none");
  return t(key, { rate: formatRate(q.kbps), loss: formatLoss(q.loss), rtt: formatRtt(q.rtt) });
}

const BADGE_TITLES = { "tile.low_tier": "tile.low_tier_title" };

const ACTION_LABELS = {
  "give-floor": "action.give_floor",
  "take-floor": "action.take_floor",
  "ask-mute": "action.ask_mute",
  "send-back": "action.send_back",
};

export class LessonView {
  /** actions: {giveFloor, takeFloor, askMute, lowerHandOf, toggleHand, toggleMute, toggleShare,
   *  openSettings, chooseCamera, chooseMic, switchLanguage, enableSound, videoReady} */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.tiles = new Map(); // tile key -> {el, video, caption parts}
    this.audio = new Map(); // slot key -> <audio>
    this.lastState = null;
    this._bindStatic();
    onLanguageChange(() => {
      translateTree(this.root);
      if (this.lastState) this.render(this.lastState);
    });
    translateTree(this.root);
  }

  _bindStatic() {
    const on = (id, fn) => this.$(id).addEventListener("click", fn);
    on("btn-lang", () => this.actions.switchLanguage());
    on("btn-hand", () => this.actions.toggleHand());
    on("btn-mute", () => this.actions.toggleMute());
    on("btn-share", () => this.actions.toggleShare());
    on("btn-settings", () => this.actions.openSettings());
    on("btn-take-floor", () => this.actions.takeFloor());
    this.$("select-camera").addEventListener("change", (e) => this.actions.chooseCamera(e.target.value));
    this.$("select-mic").addEventListener("change", (e) => this.actions.chooseMic(e.target.value));
    this.$("self-video").addEventListener("resize", () => this.lastState && this.render(this.lastState));
  }

  // -- media elements ------------------------------------------------------------------------

  /** Show a received track: video in its tile, audio in a hidden <audio> that plays it. */
  attachTrack(slot, tileKey, track) {
    if (slot.kind === "video") {
      const tile = this._tile(tileKey);
      tile.video.dataset.slot = slot.key;
      tile.video.srcObject = new MediaStream([track]);
      tile.video.play().catch(() => {});
      return;
    }
    let el = this.audio.get(slot.key);
    if (!el) {
      el = h("audio", { autoplay: true, dataset: { slot: slot.key } });
      this.$("audio-sinks").append(el);
      this.audio.set(slot.key, el);
    }
    el.srcObject = new MediaStream([track]);
    el.play().catch((err) => {
      if (err.name === "NotAllowedError") this.actions.soundBlocked();
    });
  }

  /** Play every audio element again (after a click, which lifts the browser's autoplay block). */
  resumeAudio() {
    return Promise.all([...this.audio.values()].map((el) => el.play().catch(() => {})));
  }

  clearRemoteMedia() {
    for (const tile of this.tiles.values()) tile.video.srcObject = null;
    for (const el of this.audio.values()) el.srcObject = null;
  }

  setSelfPreview(stream) {
    const video = this.$("self-video");
    video.srcObject = stream;
    video.play().catch(() => {});
  }

  setSharePreview(track) {
    const video = this.$("share-video");
    video.srcObject = track ? new MediaStream([track]) : null;
    if (track) video.play().catch(() => {});
  }

  _tile(key) {
    let tile = this.tiles.get(key);
    if (tile) return tile;
    const video = h("video", { autoplay: true, muted: true, playsinline: true });
    video.muted = true; // the attribute alone does not mute in every browser
    const markReady = () => {
      if (video.videoWidth > 0 && video.dataset.slot) this.actions.videoReady(video.dataset.slot);
    };
    video.addEventListener("resize", markReady);
    video.addEventListener("loadeddata", markReady);
    const name = h("span", { class: "name" });
    const badges = h("span", { class: "badges" });
    const figures = h("span", { class: "figures" });
    const dot = h("i", { class: "dot" });
    const qualityEl = h("span", { class: "quality" }, dot, figures);
    const placeholder = h("div", { class: "placeholder" }, h("span"));
    const actions = h("div", { class: "actions" });
    const el = h("figure", { class: "tile", dataset: { tile: key } }, video, placeholder,
      h("figcaption", {}, name, badges, qualityEl), actions);
    tile = { el, video, name, badges, figures, qualityEl, placeholder, actions, actionKey: "" };
    this.tiles.set(key, tile);
    this.$("strip").append(el);
    return tile;
  }

  // -- rendering -----------------------------------------------------------------------------

  render(state) {
    this.lastState = state;
    const app = this.root;
    const role = state.you?.role || "";
    app.dataset.role = role;
    this._renderTop(state);
    this._renderBanners(state);
    if (!state.you) return;
    const layout = computeLayout(state);
    this._renderTiles(state, layout);
    this._renderSelf(state);
    this._renderFloor(state);
    this._renderHands(state);
    this._renderToolbar(state);
  }

  _renderTop(state) {
    const lesson = state.lesson;
    this.$("lesson-title").textContent = lesson ? lesson.title : "";
    const app = t(lesson?.kind === "broadcast" ? "app.name.broadcast" : "app.name"); // 名师课堂 or 城乡结对课堂
    document.title = lesson ? `${lesson.title} · ${app}` : app;
    const you = state.you;
    const ownName = you && you.role !== "observer" && you.role !== "listener" ? classroomName(lesson, you.classroom)
      : you?.name;
    this.$("my-name").textContent = ownName || "";
    this.$("my-role").textContent = state.you ? t(`role.${state.you.role}`) : "";
    const status = this.$("conn-status");
    status.dataset.state = state.connection;
    status.querySelector(".text").textContent = t(`status.${state.connection}`, { n: state.attempt });
    this.$("btn-lang").textContent = t("lang.switch");
  }

  _renderBanners(state) {
    const wanted = [];
    if (state.serverStopping && state.connection !== "connected") {
      wanted.push(["server-restarting", "warn", t("banner.server_restarting")]);
    } else if (state.connection === "reconnecting") {
      wanted.push(["reconnecting", "warn", t("banner.reconnecting")]);
    }
    for (const p of state.problems) wanted.push([p.key, "error", t(p.key, { error: p.error?.message || p.error?.name || "" })]);
    if (state.you?.role === "rural" && state.floor === state.you.classroom) {
      wanted.push(["floor", "success", t("banner.floor_you")]);
    }
    if (state.sharing) wanted.push(["sharing", "info", t("banner.courseware_you")]);
    if (state.you?.role === "observer") wanted.push(["observer", "info", t("banner.observer")]);
    if (state.soundBlocked) wanted.push(["sound", "warn", t("banner.sound_blocked")]);
    const box = this.$("banners");
    const signature = JSON.stringify(wanted);
    if (box.dataset.signature === signature) return;
    box.dataset.signature = signature;
    box.replaceChildren(...wanted.map(([key, kind, text]) => {
      const el = h("div", { class: `banner ${kind}`, dataset: { kind: key }, role: kind === "error" ? "alert" : "status" },
        h("span", {}, text));
      if (key === "sound") {
        el.append(h("button", { type: "button", class: "primary", onclick: () => this.actions.enableSound() },
          t("action.enable_sound")));
      }
      return el;
    }));
  }

  _renderTiles(state, layout) {
    const stage = this.$("stage");
    const strip = this.$("strip");
    for (const info of layout.tiles) {
      const tile = this._tile(info.key);
      const el = tile.el;
      el.hidden = !info.visible;
      el.dataset.classroom = info.classroom || "";
      el.dataset.tier = info.tier;
      el.classList.toggle("is-stage", info.key === layout.stage);
      el.classList.toggle("has-floor", info.badges.includes("tile.has_floor"));
      el.classList.toggle("hand-up", info.badges.includes("tile.hand"));
      if (info.videoSlot && !tile.video.dataset.slot) tile.video.dataset.slot = info.videoSlot.key;
      const label = info.label ? t(info.label) : "";
      tile.name.textContent = label && info.name ? `${label} · ${info.name}` : label || info.name || "";
      tile.badges.replaceChildren(...info.badges.map((b) => h("span", {
        class: `badge ${b.replace(".", "-")}`, title: BADGE_TITLES[b] ? t(BADGE_TITLES[b]) : null,
      }, t(b))));
      tile.placeholder.hidden = !info.placeholder;
      tile.placeholder.firstChild.textContent = info.placeholder ? t(info.placeholder) : "";
      tile.qualityEl.dataset.quality = info.quality ? info.quality.quality : "none";
      const figures = info.placeholder && info.placeholder !== "tile.waiting" ? "" : statsLine("stats.line", info.quality);
      tile.figures.textContent = figures;
      tile.qualityEl.title = `${t(`quality.${tile.qualityEl.dataset.quality}`)} ${figures} · ${tierTitle(info.tier)}`;
      const actionKey = `${info.actions.join(",")}|${info.classroom}|${t("action.give_floor")}`;
      if (tile.actionKey !== actionKey) {
        tile.actionKey = actionKey;
        tile.actions.replaceChildren(...info.actions.map((name) => h("button", {
          type: "button", class: name === "ask-mute" ? "secondary" : "primary", dataset: { action: name },
          onclick: () => this._tileAction(name, info.classroom),
        }, t(ACTION_LABELS[name]))));
      }
    }
    for (const [key, tile] of this.tiles) {
      if (!layout.tiles.some((i) => i.key === key)) tile.el.hidden = true;
    }
    const stageKey = layout.stage;
    const stageTile = stageKey ? this.tiles.get(stageKey).el : null;
    if (stageTile && stageTile.parentElement !== stage) stage.replaceChildren(stageTile);
    if (!stageTile && stage.firstChild) stage.replaceChildren();
    const stripOrder = layout.tiles.filter((i) => i.key !== stageKey).map((i) => this.tiles.get(i.key).el);
    const current = [...strip.children];
    if (current.length !== stripOrder.length || current.some((el, i) => el !== stripOrder[i])) {
      strip.append(...stripOrder);
    }
    this.root.classList.toggle("has-stage", Boolean(stageTile));
    strip.dataset.count = String(stripOrder.filter((el) => !el.hidden).length);
  }

  _tileAction(name, classroom) {
    if (name === "give-floor") this.actions.giveFloor(classroom);
    else if (name === "take-floor") this.actions.takeFloor();
    else if (name === "ask-mute") this.actions.askMute(classroom);
    else if (name === "send-back") this.actions.sendBack(classroom);
  }

  _renderSelf(state) {
    const panel = this.$("self-panel");
    panel.hidden = !state.publishing;
    const video = this.$("self-video");
    const placeholder = this.$("self-placeholder");
    placeholder.hidden = state.hasCamera && video.videoWidth > 0;
    placeholder.textContent = state.hasCamera ? t("tile.waiting") : t("tile.no_camera");
    this.$("self-muted").hidden = !state.micMuted;
    this.$("self-muted").textContent = t("tile.muted");
    const q = state.selfStats;
    const statsEl = this.$("self-stats");
    statsEl.dataset.quality = q ? q.quality : "none";
    statsEl.querySelector(".figures").textContent = statsLine("stats.up", q);
    const line = linkLine(state.link);
    const linkEl = this.$("link-stats");
    linkEl.dataset.quality = line.state;
    linkEl.dataset.tier = state.link?.tier || "";
    // each " · " part stays on one line when the narrow side panel wraps it
    const parts = line.text.split(" · ").map((part) => h("span", {}, part));
    linkEl.querySelector(".figures").replaceChildren(...parts.flatMap((el, i) => (i ? [" · ", el] : [el])));
    linkEl.title = line.title;
    this.$("share-preview").hidden = !state.sharing;
  }

  _renderFloor(state) {
    const holder = state.floor;
    this.$("floor-text").textContent = holder
      ? t("side.floor_holder", { name: classroomName(state.lesson, holder, state.names) })
      : t("side.floor_none");
    this.$("floor-panel").dataset.floor = holder || "";
    this.$("btn-take-floor").hidden = !(holder && state.you.role === "master");
  }

  _renderHands(state) {
    const list = this.$("hand-queue");
    const isMaster = state.you.role === "master";
    const items = state.hands.map((hand, i) => {
      const name = hand.name || classroomName(state.lesson, hand.classroom);
      const li = h("li", { dataset: { classroom: hand.classroom } },
        h("span", { class: "pos" }, String(i + 1)),
        h("span", { class: "name" }, name),
        h("span", { class: "waited" }, t("side.waited", { t: waited(hand.raised_at, state.clockSkew) })));
      // a listening classroom of a broadcast is brought in first (it then publishes); a rural one gets the floor
      const listening = !classroomIn(state.lesson, hand.classroom);
      if (isMaster) {
        li.append(h("span", { class: "buttons" },
          listening
            ? h("button", { type: "button", class: "primary", dataset: { action: "bring-in" },
              onclick: () => this.actions.bringIn(hand.classroom) }, t("action.bring_in"))
            : h("button", { type: "button", class: "primary", dataset: { action: "give-floor" },
              onclick: () => this.actions.giveFloor(hand.classroom) }, t("action.give_floor")),
          h("button", { type: "button", class: "secondary", dataset: { action: "lower-hand" },
            onclick: () => this.actions.lowerHandOf(hand.classroom) }, t("action.lower_hand_of"))));
      }
      if (hand.classroom === state.you.classroom) li.classList.add("mine");
      return li;
    });
    // Rebuild only when the queue or language changed, so buttons are not replaced under the cursor;
    // the waited times are refreshed in place every second.
    const signature = JSON.stringify([state.hands.map((x) => x.classroom), isMaster, t("action.give_floor")]);
    if (list.dataset.signature !== signature) {
      list.dataset.signature = signature;
      list.replaceChildren(...items);
    } else {
      [...list.children].forEach((li, i) => {
        li.querySelector(".waited").textContent = items[i].querySelector(".waited").textContent;
      });
    }
    this.$("hands-empty").hidden = state.hands.length > 0;
    this.$("hands-count").textContent = state.hands.length ? String(state.hands.length) : "";
  }

  _renderToolbar(state) {
    const role = state.you.role;
    const hand = this.$("btn-hand");
    hand.hidden = role !== "rural" && role !== "listener";
    const raised = state.hands.some((x) => x.classroom === state.you.classroom);
    hand.textContent = t(raised ? "action.lower_hand" : "action.raise_hand");
    hand.classList.toggle("active", raised);
    hand.setAttribute("aria-pressed", String(raised));
    const mute = this.$("btn-mute");
    mute.hidden = !state.publishing || !state.hasMic;
    mute.textContent = t(state.micMuted ? "action.unmute" : "action.mute");
    mute.classList.toggle("active", state.micMuted);
    mute.setAttribute("aria-pressed", String(state.micMuted));
    const share = this.$("btn-share");
    share.hidden = role !== "master";
    share.textContent = t(state.sharing ? "action.stop_share" : "action.share");
    share.classList.toggle("active", state.sharing);
    share.disabled = state.connection !== "connected" && !state.sharing;
    this.$("btn-settings").hidden = role === "observer";
    this.$("toolbar").hidden = role === "observer";
  }

  // -- settings, toasts, fatal errors --------------------------------------------------------

  showDevices({ cameras, mics, cameraId, micId }) {
    const fill = (select, devices, selected) => {
      select.replaceChildren(...(devices.length
        ? devices.map((d, i) => h("option", { value: d.id, selected: d.id === selected },
          d.label || t("settings.device", { n: i + 1 })))
        : [h("option", { value: "" }, t("settings.none"))]));
      select.disabled = devices.length === 0;
    };
    fill(this.$("select-camera"), cameras, cameraId);
    fill(this.$("select-mic"), mics, micId);
  }

  openSettings() {
    const dialog = this.$("settings");
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
  }

  toast(key, vars = {}, kind = "info") {
    const box = this.$("toasts");
    const el = h("div", { class: `toast ${kind}`, role: "status" }, t(key, vars));
    box.append(el);
    while (box.children.length > 3) box.firstChild.remove();
    setTimeout(() => el.remove(), 6000);
  }

  fatal(key, vars = {}) {
    this.$("fatal-text").textContent = t(key, vars);
    this.$("fatal").hidden = false;
    this.$("fatal").dataset.reason = key;
  }
}
