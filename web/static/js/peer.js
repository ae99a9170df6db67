// The two peer connections a classroom holds with the forwarding server (see sfu/room.py):
// - Publisher: we offer send-only tracks (camera, mic, later courseware) and the server answers;
// - Subscriber: the server offers fixed slots ("<classroom>:camera", "floor:mic", ...), we answer.
// The server (aiortc) does not trickle and we do not either: each SDP is sent once ICE gathering
// is complete, so it carries every candidate.

const GATHER_TIMEOUT_MS = 3000;

export function rtcConfiguration(iceServers) {
  return { iceServers: iceServers || [], bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };
}

/** Resolve when ICE gathering is complete (or after a timeout: we send what we have). */
export function iceGatheringDone(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") finish();
    };
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** VP8 first: every classroom terminal decodes it and the server forwards without transcoding. */
function preferVp8(transceiver) {
  if (typeof transceiver.setCodecPreferences !== "function" || !window.RTCRtpReceiver?.getCapabilities) return;
  const codecs = RTCRtpReceiver.getCapabilities("video")?.codecs || [];
  const vp8 = codecs.filter((c) => c.mimeType.toLowerCase() === "video/vp8");
  if (!vp8.length) return;
  const rest = codecs.filter((c) => c.mimeType.toLowerCase() !== "video/vp8");
  try {
    transceiver.setCodecPreferences([...vp8, ...rest]);
  } catch (err) {
    console.warn("codec preferences not applied", err);
  }
}

// Under CPU or bandwidth pressure a camera keeps its frame rate (people move and talk) and gives
// up resolution; courseware keeps its resolution (text must stay sharp) and gives up frames.
const DEGRADATION = { camera: "maintain-framerate", courseware: "maintain-resolution" };

async function tuneSender(sender, source, maxBitrate) {
  if (!sender.getParameters || !sender.track || sender.track.kind !== "video") return;
  const params = sender.getParameters();
  if (!params.encodings || !params.encodings.length) params.encodings = [{}];
  if (maxBitrate) params.encodings[0].maxBitrate = maxBitrate;
  if (DEGRADATION[source]) params.degradationPreference = DEGRADATION[source];
  try {
    await sender.setParameters(params);
  } catch (err) {
    console.warn("sender parameters not applied", err);
  }
}

function watchState(pc, onState) {
  pc.addEventListener("connectionstatechange", () => onState(pc.connectionState));
}

/** Our sending connection. Sources are named by mid so the server knows camera from courseware. */
export class Publisher {
  constructor(signaling, config, { onState = () => {}, bitrates = {} } = {}) {
    this.signaling = signaling;
    this.pc = new RTCPeerConnection(config);
    this.bitrates = bitrates; // source -> max bits per second
    this.transceivers = new Map(); // source -> RTCRtpTransceiver
    this.closed = false;
    watchState(this.pc, onState);
  }

  /** Send the camera and microphone tracks we have (either may be null). */
  async start({ camera, mic, stream }) {
    const streams = stream ? [stream] : [];
    if (camera) {
      const tr = this.pc.addTransceiver(camera, { direction: "sendonly", streams });
      preferVp8(tr);
      this.transceivers.set("camera", tr);
    }
    if (mic) this.transceivers.set("mic", this.pc.addTransceiver(mic, { direction: "sendonly", streams }));
    if (this.transceivers.size) await this.negotiate();
  }

  sources() {
    const out = {};
    for (const [source, tr] of this.transceivers) if (tr.mid !== null) out[tr.mid] = source;
    return out;
  }

  async negotiate() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await iceGatheringDone(this.pc);
    const reply = await this.signaling.call("publish", { sdp: this.pc.localDescription.sdp, sources: this.sources() });
    if (this.closed) return;
    await this.pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    for (const [source, tr] of this.transceivers) await tuneSender(tr.sender, source, this.bitrates[source]);
  }

  /** Switch device without renegotiating (same kind, same m-line). */
  async replaceTrack(source, track) {
    const tr = this.transceivers.get(source);
    if (tr) await tr.sender.replaceTrack(track);
  }

  has(source) {
    return this.transceivers.has(source);
  }

  /** Courseware is a third transceiver, added once (renegotiated), then reused by replaceTrack. */
  async shareCourseware(track) {
    const existing = this.transceivers.get("courseware");
    if (existing) {
      await existing.sender.replaceTrack(track);
      return;
    }
    const tr = this.pc.addTransceiver(track, { direction: "sendonly" });
    preferVp8(tr);
    this.transceivers.set("courseware", tr);
    await this.negotiate();
  }

  async stopCourseware() {
    const tr = this.transceivers.get("courseware");
    if (tr) await tr.sender.replaceTrack(null);
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}

/** Our receiving connection: fixed slots offered by the server; `onTrack(mid, track)` per slot.
 * `mode: "patrol"` (observers): camera slots only, keyframes only, a few seconds apart (patrol tiles). */
export class Subscriber {
  constructor(signaling, config, { onState = () => {}, onTrack = () => {}, mode = "full" } = {}) {
    this.signaling = signaling;
    this.mode = mode;
    this.pc = new RTCPeerConnection(config);
    this.closed = false;
    this.pc.addEventListener("track", (ev) => onTrack(ev.transceiver.mid, ev.track));
    watchState(this.pc, onState);
  }

  /** Ask for the server's offer, answer it; `beforeAnswer(slots)` runs before tracks arrive. */
  async start(beforeAnswer) {
    const reply = await this.signaling.call("subscribe", this.mode === "full" ? {} : { mode: this.mode });
    if (this.closed) return reply.slots;
    beforeAnswer(reply.slots);
    await this.pc.setRemoteDescription({ type: "offer", sdp: reply.sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    await iceGatheringDone(this.pc);
    if (this.closed) return reply.slots;
    await this.signaling.call("subscribe_answer", { sdp: this.pc.localDescription.sdp });
    return reply.slots;
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}
