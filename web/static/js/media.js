// Local devices: camera and microphone (with a fallback when one is missing), device lists,
// screen/window capture for courseware, and a plain-language reason for every failure.

const CAMERA = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30, max: 30 } };
const MIC = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
// 720p: sharp enough for slides on a classroom screen, light enough for a rural downlink.
const SCREEN = { video: { frameRate: { ideal: 15, max: 15 }, width: { max: 1280 }, height: { max: 720 } }, audio: false };

/** "ok", or the i18n key explaining why this page cannot use camera/microphone at all. */
export function mediaSupport() {
  if (!window.RTCPeerConnection) return "media.unsupported";
  if (!window.isSecureContext) return "media.insecure";
  if (!navigator.mediaDevices?.getUserMedia) return "media.unsupported";
  return "ok";
}

/** The i18n key for a getUserMedia/getDisplayMedia error. */
export function describeMediaError(err) {
  switch (err?.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return "media.denied";
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return "media.not_found";
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return "media.busy";
    default:
      return "media.failed";
  }
}

function cameraConstraints(deviceId) {
  return deviceId ? { ...CAMERA, deviceId: { exact: deviceId } } : CAMERA;
}

function micConstraints(deviceId) {
  return deviceId ? { ...MIC, deviceId: { exact: deviceId } } : MIC;
}

async function tryOpen(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: null };
  } catch (error) {
    return { stream: null, error };
  }
}

/**
 * Open camera and microphone. A remembered device that is gone falls back to the default one;
 * a missing camera or microphone still lets the classroom send the other.
 * Returns {stream, camera, mic, problems: [{key, error}]}.
 */
export async function openCameraAndMic({ cameraId = null, micId = null } = {}) {
  let res = await tryOpen({ video: cameraConstraints(cameraId), audio: micConstraints(micId) });
  if (res.error && (cameraId || micId) && describeMediaError(res.error) === "media.not_found") {
    res = await tryOpen({ video: CAMERA, audio: MIC });
  }
  if (!res.error) {
    return { stream: res.stream, camera: res.stream.getVideoTracks()[0] || null,
      mic: res.stream.getAudioTracks()[0] || null, problems: [] };
  }
  const kind = describeMediaError(res.error);
  if (kind !== "media.not_found") {
    return { stream: new MediaStream(), camera: null, mic: null, problems: [{ key: kind, error: res.error }] };
  }
  // One of the two is missing: take what there is.
  const video = await tryOpen({ video: CAMERA });
  const audio = await tryOpen({ audio: MIC });
  const stream = new MediaStream();
  const camera = video.stream?.getVideoTracks()[0] || null;
  const mic = audio.stream?.getAudioTracks()[0] || null;
  if (camera) stream.addTrack(camera);
  if (mic) stream.addTrack(mic);
  const problems = [];
  if (!camera && !mic) problems.push({ key: "media.not_found", error: res.error });
  else if (!camera) problems.push({ key: "media.camera_missing", error: video.error });
  else if (!mic) problems.push({ key: "media.mic_missing", error: audio.error });
  return { stream, camera, mic, problems };
}

export async function openCamera(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: cameraConstraints(deviceId) });
  return stream.getVideoTracks()[0];
}

export async function openMic(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: micConstraints(deviceId) });
  return stream.getAudioTracks()[0];
}

/** Cameras and microphones as [{id, label}] (labels are known once permission was given). */
export async function listDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return { cameras: [], mics: [] };
  const devices = await navigator.mediaDevices.enumerateDevices();
  const pick = (kind) =>
    devices.filter((d) => d.kind === kind && d.deviceId).map((d) => ({ id: d.deviceId, label: d.label }));
  return { cameras: pick("videoinput"), mics: pick("audioinput") };
}

export function onDevicesChanged(fn) {
  navigator.mediaDevices?.addEventListener?.("devicechange", fn);
}

/** A screen or window chosen by the teacher, as one video track tuned for text and slides. */
export async function openScreen() {
  if (!navigator.mediaDevices?.getDisplayMedia) {
    const err = new Error("getDisplayMedia is not supported");
    err.name = "NotSupportedError";
    throw err;
  }
  const stream = await navigator.mediaDevices.getDisplayMedia(SCREEN);
  const track = stream.getVideoTracks()[0];
  if ("contentHint" in track) track.contentHint = "detail";
  return track;
}

const DEVICE_KEYS = { camera: "twinclass.camera", mic: "twinclass.mic" };

export function rememberedDevice(kind) {
  try {
    return localStorage.getItem(DEVICE_KEYS[kind]);
  } catch {
    return null;
  }
}

export function rememberDevice(kind, deviceId) {
  try {
    localStorage.setItem(DEVICE_KEYS[kind], deviceId);
  } catch {
    // not remembered; fine for this page
  }
}
