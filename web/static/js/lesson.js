// The lesson session: join with the link's token, publish our camera and microphone, receive the
// slots the server feeds, follow hands/floor/courseware events, and come back by itself after a
// network loss (in a cluster, on another node when ours died: failover.js). Owns the state;
// LessonView draws it.

import { Signaling, reconnectDelay } from "./signaling.js";
import { Failover, originOf } from "./failover.js";
import { Publisher, Subscriber, rtcConfiguration } from "./peer.js";
import * as media from "./media.js";
import { StatsMonitor } from "./stats.js";
import { tileKeyOf } from "./layout.js";
import { otherLanguage, setLanguage } from "./i18n.js";
import { LessonView } from "./views.js";

// Uplink caps: rural uplinks are often weak; the master's courseware needs sharp text.
const BITRATES = {
  master: { camera: 1_200_000, courseware: 1_500_000 },
  rural: { camera: 700_000 },
};
const UNSTABLE_GRACE_MS = 8000; // a connection "disconnected" this long is rebuilt
const STATS_EVERY_MS = 2000;
const FATAL_CODES = { bad_token: "fatal.bad_token", not_found: "fatal.not_found", lesson_ended: "fatal.ended" };

export class LessonApp {
  constructor({ lessonId, token, config, root }) {
    this.lessonId = lessonId;
    this.token = token;
    this.rtc = rtcConfiguration(config.iceServers);
    this.state = {
      connection: "connecting", // connecting | media | connected | unstable | reconnecting | closed
      attempt: 0,
      you: null,
      lesson: null,
      online: new Set(),
      hands: [],
      names: new Map(), // listening classrooms of a broadcast: id -> name (they are not in the lesson)
      broughtIn: false, // we are a listening classroom the master brought in (we publish)
      floor: null,
      courseware: false,
      slots: [],
      videoReady: new Set(),
      publishing: false,
      hasCamera: false,
      hasMic: false,
      micMuted: false,
      sharing: false,
      problems: [],
      soundBlocked: false,
      stats: new Map(),
      selfStats: null,
      link: null, // the server's last `link` report on our downlink
      serverStopping: null, // {reason, retry_after_s} from `server_stopping` until we are back in
      clockSkew: 0,
    };
    this.view = new LessonView(root, this._actions());
    this.sig = null;
    this.pub = null;
    this.sub = null;
    this.pcStates = {};
    this.local = null; // {stream, camera, mic} once opened (kept across reconnections)
    this.screen = null; // the shared courseware track
    this.session = 0; // bumped on every (re)connection; stale async work checks it
    this.joinedOnce = false;
    this.joined = false; // in the lesson on the current socket
    this.onEdge = false; // joined on an edge node of the lesson (the join reply names its `origin`)
    this.joinToken = null; // the token of the last join (a login session's: fetched from the page's node)
    this.redirectTo = null; // a mid-session `redirect`: where to go when the server closes the socket
    this.failover = null;
    this.stopped = false;
    this.unstableTimer = null;
    this.statsMonitor = new StatsMonitor();
  }

  start() {
    if (!window.RTCPeerConnection) return this._fatal("media.unsupported");
    this.sig = new Signaling();
    this.failover = new Failover(this.sig, { onMove: () => this._lost(), stopped: () => this.stopped });
    this._bindSignaling();
    this.sig.connect();
    setInterval(() => this.render(), 1000);
    setInterval(() => this._sampleStats(), STATS_EVERY_MS);
    media.onDevicesChanged(() => this._refreshDevices());
    this.render();
  }

  render() {
    this.view.render(this.state);
  }

  // -- signaling -----------------------------------------------------------------------------

  _bindSignaling() {
    const s = this.state;
    const sig = this.sig;
    sig.on("connect", () => {
      this.failover.connected();
      this._join();
    });
    sig.on("disconnect", (reason) => {
      console.info("connection lost:", reason, this.failover.server);
      this._lost();
      if (this.redirectTo) { // brought in on an edge: to the lesson's node
        const url = this.redirectTo;
        this.redirectTo = null;
        return this.failover.moveTo(url);
      }
      this.failover.disconnected(reason); // in a cluster: another node if ours does not come back
      // socket.io retries by itself after a network loss, but not when the server closed the
      // session (e.g. its media connection failed): then we come back ourselves.
      if (reason === "io server disconnect") this._reconnectSoon();
    });
    sig.on("connect_error", (err) => {
      console.info("could not connect:", err?.message, this.failover.server);
      this._lost();
      this.failover.connectFailed();
    });
    sig.onReconnectAttempt((n) => {
      s.attempt = n;
      this.render();
    });
    sig.on("classroom_joined", (c) => {
      s.online.add(c.classroom);
      if (c.name) s.names.set(c.classroom, c.name);
      if (this._isOther(c.classroom)) this.view.toast("notice.joined", { name: this._name(c.classroom) });
      this.render();
    });
    sig.on("classroom_left", (c) => {
      s.online.delete(c.classroom);
      if (this._isOther(c.classroom)) this.view.toast("notice.left", { name: this._name(c.classroom) });
      this.render();
    });
    sig.on("hand_raised", (h) => {
      if (h.name && h.classroom && !this._isListed(h.classroom)) s.names.set(h.classroom, h.name);
      if (s.you?.role === "master") this.view.toast("notice.hand_raised", { name: this._name(h.classroom) });
    });
    sig.on("hands", ({ queue }) => this._setHands(queue || []));
    sig.on("brought_in", ({ classroom, name }) => {
      if (name) s.names.set(classroom, name);
      if (classroom !== s.you?.classroom) return;
      s.broughtIn = true;
      this.view.toast("notice.brought_in", {}, "success");
      // on an edge node the server sends us to the lesson's node (`redirect`), where we publish
      if (!this.onEdge) this._publish(this.session).catch((err) => console.warn("publishing when brought in failed", err));
      this.render();
    });
    sig.on("sent_back", ({ classroom }) => {
      if (classroom !== s.you?.classroom) return;
      s.broughtIn = false;
      this.pub?.close();
      this.pub = null;
      s.publishing = false;
      this.view.toast("notice.sent_back");
      this.render();
    });
    sig.on("floor", ({ classroom }) => this._setFloor(classroom));
    sig.on("mute_requested", ({ classroom }) => {
      if (classroom === s.you?.classroom) this._muteRequested();
    });
    sig.on("courseware", ({ on }) => {
      if (s.courseware !== Boolean(on) && s.you?.role !== "master") {
        this.view.toast(on ? "notice.courseware_on" : "notice.courseware_off");
      }
      s.courseware = Boolean(on);
      this.render();
    });
    sig.on("slots", ({ slots }) => {
      this._applySlots(slots || []);
      this.render();
    });
    sig.on("media_lost", ({ target, ufrag } = {}) => {
      // the server lost its side of one of our connections (ICE/DTLS gave up, a DTLS close) and
      // ended it: if it is the one we use now, we set up again (as for a failed one)
      const pc = target === "publish" ? this.pub?.pc : target === "subscribe" ? this.sub?.pc : null;
      const mine = pc?.localDescription?.sdp?.match(/^a=ice-ufrag:(\S+)/m)?.[1];
      if (mine && mine === ufrag) this._restart(this.session);
    });
    sig.on("link", (link) => {
      this.state.link = link;
      this.render();
    });
    sig.on("error", (err) => {
      if (FATAL_CODES[err?.code]) this._fatal(FATAL_CODES[err.code], { message: err.message });
      // mid-session (a join's own refusal is handled by its reply): the server closes us next
      if (err?.code === "redirect" && this.joined && originOf(err.url)) this.redirectTo = err.url;
    });
    sig.on("kicked", (info) => this._fatal(info?.code === "lesson_ended" ? "fatal.ended" : "fatal.kicked"));
    sig.on("server_stopping", (info) => {
      // the server drains (restart, upgrade): it closes our socket next; come back after retry_after_s
      const retry = Number(info?.retry_after_s);
      s.serverStopping = { reason: String(info?.reason || ""), retryAfterMs: retry > 0 ? Math.min(retry, 30) * 1000 : 0 };
      console.info("server stopping", info);
      this.render();
    });
  }

  /** The link's token; without one, a fresh short-lived one from the login session (null: neither);
   * on another node than the page's (its node died), the token we last joined with. */
  async _joinToken() {
    if (this.token) return this.token;
    if (this.sig.server && this.joinToken) return this.joinToken;
    const res = await fetch(`/api/session/join-token?lesson=${encodeURIComponent(this.lessonId)}`,
      { cache: "no-store", credentials: "same-origin" });
    if (res.status === 401 || res.status === 403 || res.status === 404) return null;
    if (!res.ok) throw new Error(`join token: HTTP ${res.status}`); // a server restarting: try again
    return (await res.json()).token;
  }

  _isOther(classroom) {
    return this.state.you && classroom !== this.state.you.classroom;
  }

  async _join() {
    const session = ++this.session;
    const s = this.state;
    s.connection = "connecting";
    this.render();
    let reply;
    try {
      const token = await this._joinToken();
      if (session !== this.session) return;
      if (!token) return this._fatal("fatal.no_token");
      this.joinToken = token;
      reply = await this.sig.call("join", { token, lesson: this.lessonId });
    } catch (err) {
      if (FATAL_CODES[err.code]) return this._fatal(FATAL_CODES[err.code], { message: err.message });
      if (err.code === "redirect" && this._redirect(err.extra.url)) return;
      return this._restart(session);
    }
    if (session !== this.session) return;
    s.you = reply.you;
    s.lesson = reply.lesson;
    s.online = new Set((reply.classrooms || []).map((c) => c.classroom));
    for (const c of reply.classrooms || []) if (c.name) s.names.set(c.classroom, c.name);
    this.joined = true;
    this.onEdge = Boolean(reply.origin);
    this.failover.remember(reply.nodes);
    // a listening classroom comes back listening, unless it was brought in (then it came here to publish)
    s.broughtIn = s.you.role === "listener" && (reply.guests || []).includes(s.you.classroom);
    s.hands = reply.hands || [];
    s.floor = reply.floor ?? null;
    s.courseware = Boolean(reply.courseware);
    s.connection = "media";
    s.attempt = 0;
    s.serverStopping = null;
    if (this.joinedOnce) this.view.toast("notice.reconnected", {}, "success");
    this.joinedOnce = true;
    this.render();
    try {
      if (s.you.role === "master" || s.you.role === "rural" || s.broughtIn) await this._publish(session);
      if (session !== this.session) return;
      await this._subscribe(session);
    } catch (err) {
      console.warn("session setup failed", err);
      this._restart(session);
    }
  }

  /** The socket is gone: drop the media connections; socket.io is already reconnecting. */
  _lost() {
    if (this.stopped) return;
    this.joined = false;
    this.session += 1;
    this._closePeers();
    this.state.connection = "reconnecting";
    this.state.attempt = Math.max(1, this.state.attempt);
    this.render();
  }

  /** Rebuild everything (media connection failed, setup failed): reconnect the socket. */
  _restart(session) {
    if (this.stopped || session !== this.session) return;
    this._lost();
    this.sig.disconnect();
    this._reconnectSoon();
  }

  _reconnectSoon() {
    this.state.attempt += 1;
    const stopping = this.state.serverStopping;
    const delay = Math.max(reconnectDelay(this.state.attempt), stopping ? stopping.retryAfterMs : 0);
    setTimeout(() => {
      if (!this.stopped && !this.sig.connected) this.sig.connect();
    }, delay);
  }

  /** In a cluster the lesson lives on one node: go there, with the same link. */
  _redirect(url) {
    const target = originOf(url);
    if (!target) return false;
    if (target === location.origin) {
      if (!this.sig.server) return false; // here already
      this.failover.moveTo(target); // back to the page's own node (we had failed over from it)
      return true;
    }
    this.stopped = true;
    this.sig.disconnect();
    location.assign(`${target}${location.pathname}${location.search}`);
    return true;
  }

  _fatal(key, vars = {}) {
    this.stopped = true;
    this.session += 1;
    this._closePeers();
    this.sig?.disconnect();
    this.state.connection = "closed";
    this.render();
    this.view.fatal(key, vars);
  }

  _closePeers() {
    clearTimeout(this.unstableTimer);
    this.pub?.close();
    this.sub?.close();
    this.pub = this.sub = null;
    this.pcStates = {};
    // the slots (and so the tiles) stay: they are fixed per lesson and role, and the tiles say "reconnecting"
    this.state.videoReady.clear();
    this.state.stats = new Map();
    this.state.selfStats = null;
    this.state.link = null;
    this.statsMonitor.reset();
    this.view.clearRemoteMedia();
  }

  _peerState(which, value, session) {
    if (session !== this.session) return;
    this.pcStates[which] = value;
    const states = Object.values(this.pcStates);
    const s = this.state;
    if (states.includes("failed")) return this._restart(session);
    if (states.includes("disconnected")) {
      s.connection = "unstable";
      clearTimeout(this.unstableTimer);
      this.unstableTimer = setTimeout(() => {
        if (Object.values(this.pcStates).includes("disconnected")) this._restart(session);
      }, UNSTABLE_GRACE_MS);
    } else if (states.length && states.every((x) => x === "connected")) {
      clearTimeout(this.unstableTimer);
      s.connection = "connected";
    }
    this.render();
  }

  // -- media ---------------------------------------------------------------------------------

  async _openLocalMedia() {
    const s = this.state;
    const support = media.mediaSupport();
    if (support !== "ok") {
      s.problems = [{ key: support }];
      this.local = { stream: new MediaStream(), camera: null, mic: null };
      return;
    }
    const result = await media.openCameraAndMic({
      cameraId: media.rememberedDevice("camera"),
      micId: media.rememberedDevice("mic"),
    });
    this.local = result;
    s.problems = result.problems;
    s.hasCamera = Boolean(result.camera);
    s.hasMic = Boolean(result.mic);
    if (result.camera) this.view.setSelfPreview(new MediaStream([result.camera]));
    this._refreshDevices();
  }

  async _publish(session) {
    const s = this.state;
    if (!this.local) await this._openLocalMedia();
    if (session !== this.session) return;
    const { camera, mic, stream } = this.local;
    if (mic) mic.enabled = !s.micMuted;
    s.publishing = Boolean(camera || mic);
    if (!camera && !mic && !this.screen) return; // nothing to send: receive only
    const pub = new Publisher(this.sig, this.rtc, {
      onState: (v) => this._peerState("publish", v, session),
      bitrates: BITRATES[s.you.role] || {},
    });
    this.pub = pub;
    await pub.start({ camera, mic, stream });
    if (this.screen && session === this.session) {
      // we were sharing when the connection dropped: share again
      await pub.shareCourseware(this.screen);
      await this.sig.call("courseware", { on: true });
    }
  }

  async _subscribe(session) {
    const sub = new Subscriber(this.sig, this.rtc, {
      onState: (v) => this._peerState("subscribe", v, session),
      onTrack: (mid, track) => this._onTrack(mid, track, session),
    });
    this.sub = sub;
    await sub.start((slots) => this._applySlots(slots));
    this.render();
  }

  _applySlots(slots) {
    this.state.slots = slots.filter((slot) => slot.mid !== null && slot.mid !== undefined);
  }

  _slotOfMid(mid) {
    return this.state.slots.find((slot) => String(slot.mid) === String(mid)) || null;
  }

  _onTrack(mid, track, session) {
    if (session !== this.session) return;
    const slot = this._slotOfMid(mid);
    if (!slot) {
      console.warn("track on unknown mid", mid);
      return;
    }
    this.view.attachTrack(slot, tileKeyOf(slot), track);
    this.render();
  }

  async _sampleStats() {
    if (!this.sub && !this.pub) return;
    try {
      if (this.sub) this.state.stats = await this.statsMonitor.receiving(this.sub.pc, (mid) => this._slotOfMid(mid));
      this.state.selfStats = this.pub ? await this.statsMonitor.sending(this.pub.pc) : null;
    } catch (err) {
      console.debug("stats", err);
    }
  }

  async _refreshDevices() {
    if (!this.local) return;
    const { cameras, mics } = await media.listDevices();
    this.view.showDevices({
      cameras, mics,
      cameraId: this.local.camera?.getSettings?.().deviceId,
      micId: this.local.mic?.getSettings?.().deviceId,
    });
  }

  async _switchDevice(kind, deviceId) {
    if (!deviceId || !this.local) return;
    const s = this.state;
    const old = this.local[kind];
    let track;
    try {
      track = kind === "camera" ? await media.openCamera(deviceId) : await media.openMic(deviceId);
    } catch (err) {
      this.view.toast("media.switch_failed", { error: err.message || err.name }, "error");
      return;
    }
    media.rememberDevice(kind, deviceId);
    if (kind === "mic") track.enabled = !s.micMuted;
    const published = this.pub && this.pub.has(kind);
    if (published) await this.pub.replaceTrack(kind, track); // the old one stops only after
    if (old) {
      this.local.stream.removeTrack(old);
      old.stop();
    }
    this.local.stream.addTrack(track);
    this.local[kind] = track;
    s.hasCamera = Boolean(this.local.camera);
    s.hasMic = Boolean(this.local.mic);
    s.problems = [];
    if (kind === "camera") this.view.setSelfPreview(new MediaStream([track]));
    if (!published) this._restart(this.session); // a device that was missing at start: publish again
    this.render();
  }

  _setHands(queue) {
    const s = this.state;
    const before = new Set(s.hands.map((x) => x.classroom));
    const newest = queue[queue.length - 1];
    if (newest && !before.has(newest.classroom)) s.clockSkew = Date.now() / 1000 - newest.raised_at;
    s.hands = queue;
    for (const hand of queue) if (hand.name) s.names.set(hand.classroom, hand.name);
    this.render();
  }

  _setFloor(classroom) {
    const s = this.state;
    const previous = s.floor;
    s.floor = classroom ?? null;
    const me = s.you?.classroom;
    if (s.floor && s.floor === me) this.view.toast("notice.floor_you", {}, "success");
    else if (s.floor && s.you?.role === "master") {
      this.view.toast("notice.floor_given", { name: this._name(s.floor) });
    } else if (!s.floor && previous && s.you?.role !== "master") this.view.toast("notice.floor_taken");
    this.render();
  }

  _isListed(classroom) {
    const lesson = this.state.lesson;
    return Boolean(lesson && [lesson.master, ...(lesson.rurals || [])].some((c) => c.id === classroom));
  }

  _name(classroom) {
    const lesson = this.state.lesson;
    if (!lesson) return classroom;
    const all = [lesson.master, ...(lesson.rurals || [])];
    return all.find((c) => c.id === classroom)?.name || this.state.names.get(classroom) || classroom;
  }

  _muteRequested() {
    this._setMuted(true);
    this.view.toast("notice.mute_requested", {}, "warn");
  }

  _setMuted(muted) {
    this.state.micMuted = muted;
    if (this.local?.mic) this.local.mic.enabled = !muted;
    this.render();
  }

  async _startShare() {
    let track;
    try {
      track = await media.openScreen();
    } catch (err) {
      if (err.name !== "NotAllowedError" && err.name !== "AbortError") {
        this.view.toast("share.failed", { error: err.message || err.name }, "error");
      }
      return; // the teacher cancelled the picker
    }
    this.screen = track;
    track.addEventListener("ended", () => this._stopShare());
    this.state.sharing = true;
    this.view.setSharePreview(track);
    this.render();
    try {
      if (!this.pub) {
        const session = this.session;
        this.pub = new Publisher(this.sig, this.rtc, {
          onState: (v) => this._peerState("publish", v, session),
          bitrates: BITRATES.master,
        });
      }
      await this.pub.shareCourseware(track);
      await this.sig.call("courseware", { on: true });
    } catch (err) {
      this.view.toast("share.failed", { error: err.message || err.name }, "error");
      this._stopShare();
    }
  }

  async _stopShare() {
    if (!this.screen) return;
    const track = this.screen;
    this.screen = null;
    track.stop();
    this.state.sharing = false;
    this.view.setSharePreview(null);
    this.render();
    try {
      await this.pub?.stopCourseware();
      await this.sig.call("courseware", { on: false });
    } catch (err) {
      console.warn("stop sharing", err);
    }
  }

  async _call(event, data, okToast = null) {
    try {
      await this.sig.call(event, data);
      if (okToast) this.view.toast(okToast.key, okToast.vars);
    } catch (err) {
      this.view.toast("notice.action_failed", { message: err.message }, "error");
    }
  }

  // -- what the buttons do -------------------------------------------------------------------

  _actions() {
    const s = this.state;
    return {
      giveFloor: (classroom) => this._call("give_floor", { classroom }),
      bringIn: (classroom) => this._call("bring_in", { classroom }),
      sendBack: (classroom) => this._call("send_back", { classroom }),
      takeFloor: () => this._call("take_floor"),
      askMute: (classroom) =>
        this._call("request_mute", { classroom }, { key: "notice.mute_sent", vars: { name: this._name(classroom) } }),
      lowerHandOf: (classroom) => this._call("lower_hand", { classroom }),
      toggleHand: () => {
        const raised = s.hands.some((x) => x.classroom === s.you?.classroom);
        return this._call(raised ? "lower_hand" : "raise_hand");
      },
      toggleMute: () => this._setMuted(!s.micMuted),
      toggleShare: () => (this.screen ? this._stopShare() : this._startShare()),
      openSettings: () => {
        this._refreshDevices();
        this.view.openSettings();
      },
      chooseCamera: (id) => this._switchDevice("camera", id),
      chooseMic: (id) => this._switchDevice("mic", id),
      switchLanguage: () => setLanguage(otherLanguage()),
      enableSound: () => {
        s.soundBlocked = false;
        this.view.resumeAudio();
        this.render();
      },
      soundBlocked: () => {
        s.soundBlocked = true;
        this.render();
      },
      videoReady: (slotKey) => {
        if (!s.videoReady.has(slotKey)) {
          s.videoReady.add(slotKey);
          this.render();
        }
      },
    };
  }
}
