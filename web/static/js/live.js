// The live HLS watch page: plays /live/{lesson}/index.m3u8 with hls.js (Media Source Extensions),
// or with the browser's own HLS where MSE is missing (iPhone Safari). The token from the page's
// link goes only to the playlist request; segment links are signed by the server.

const video = document.getElementById("live-video");
const statusLine = document.getElementById("live-status");
const token = new URLSearchParams(location.search).get("token");
const lesson = decodeURIComponent(location.pathname.split("/")[2] || "");
const source = `/live/${encodeURIComponent(lesson)}/index.m3u8` + (token ? `?token=${encodeURIComponent(token)}` : "");
const RETRY_MS = 3000; // the lesson is not live yet (404), or the network dropped: try again

function say(text) {
  statusLine.textContent = text;
}

video.addEventListener("playing", () => say("直播中 Live"));
video.addEventListener("waiting", () => say("缓冲中… Buffering…"));

function playWithHlsJs() {
  // the worker from our own origin (CSP worker-src falls back to script-src 'self'; no blob: worker)
  const hls = new window.Hls({ workerPath: "/vendor/hls.js/hls.worker.js", liveSyncDurationCount: 2 });
  window.twinclassPlayer = { kind: "hls.js", hls };
  hls.on(window.Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    const code = data.response && data.response.code;
    say(code === 401 || code === 403 ? "无权观看 Not allowed to watch this lesson" : "等待直播… Waiting for the stream…");
    if (code !== 401 && code !== 403) setTimeout(() => hls.loadSource(source), RETRY_MS);
  });
  hls.loadSource(source);
  hls.attachMedia(video);
}

if (window.Hls && window.Hls.isSupported()) {
  playWithHlsJs();
} else if (video.canPlayType("application/vnd.apple.mpegurl")) {
  window.twinclassPlayer = { kind: "native" };
  video.src = source;
  video.addEventListener("error", () => {
    say("等待直播… Waiting for the stream…");
    setTimeout(() => { video.src = source; }, RETRY_MS);
  });
} else {
  say("此浏览器不能播放直播 This browser cannot play the live stream");
}
