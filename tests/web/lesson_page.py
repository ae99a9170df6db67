"""Driving the lesson page in Chromium the way a user would look at it (imported as `lesson_page`)."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from browser import SCREENSHOTS, save_console_log
from harness import ROOT, TWINCLASS, ClassroomLauncher, ClassroomProcess, ServerProcess, mint_token, wait_for
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from classroom_client.pattern import PatternInfo, read_pattern

# Counts what the page asks of the browser's media APIs (an observer must ask for nothing) and
# keeps every RTCPeerConnection so a test can read its senders the way getStats would.
MEDIA_PROBE = """
(() => {
  window.__media = { getUserMedia: 0, getDisplayMedia: 0, peerConnections: [] };
  const md = navigator.mediaDevices;
  if (md) {
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => { window.__media.getUserMedia += 1; return gum(c); };
    const gdm = md.getDisplayMedia && md.getDisplayMedia.bind(md);
    if (gdm) md.getDisplayMedia = (c) => { window.__media.getDisplayMedia += 1; return gdm(c); };
  }
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__media.peerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
})();
"""

VIDEO_STATE = """
(sel) => [...document.querySelectorAll(sel)].map(v => ({
  slot: v.dataset.slot || null, width: v.videoWidth, height: v.videoHeight, time: v.currentTime,
  frames: v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : null,
  visible: !!(v.offsetWidth || v.offsetHeight),
}))
"""

# a <video>'s current picture at its own size, as luma bytes (base64), and the page's clock then
GRAB = """(sel) => {
  const v = document.querySelector(sel);
  if (!v || !v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const rgba = g.getImageData(0, 0, c.width, c.height).data;
  const luma = new Uint8Array(c.width * c.height);
  for (let i = 0; i < luma.length; i++) {
    luma[i] = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
  }
  let s = '';
  for (let i = 0; i < luma.length; i += 8192) s += String.fromCharCode.apply(null, luma.subarray(i, i + 8192));
  return {w: c.width, h: c.height, luma: btoa(s), now: Date.now()};
}"""


def video_picture(page: Page, selector: str) -> tuple[PatternInfo | None, int]:
    """The test pattern in the picture a <video> shows now (None: no picture, or not the pattern)
    and the page's clock (ms since the epoch) when it was read."""
    grab = page.evaluate(GRAB, selector)
    if grab is None:
        return None, 0
    luma = np.frombuffer(base64.b64decode(grab["luma"]), np.uint8).reshape(grab["h"], grab["w"])
    return read_pattern(luma), int(grab["now"])


# A connection indicator (`.quality`: dot + figures, as views.js renders it) as the user sees it.
INDICATOR_STATE = """
(sel) => {
  const el = document.querySelector(sel);
  if (!el) return null;
  const dot = el.querySelector('.dot');
  const figures = el.querySelector('.figures');
  const shown = !!(figures && (figures.offsetWidth || figures.offsetHeight));
  return { quality: el.dataset.quality || '', colour: dot ? getComputedStyle(dot).backgroundColor : '',
           text: shown ? figures.innerText : (el.title || '') };
}
"""

# the dot's colours in css/lesson.css (--success, --warn, --error, and the grey of "no data")
DOT_COLOURS = {"rgb(46, 160, 67)": "green", "rgb(210, 153, 34)": "amber", "rgb(229, 83, 75)": "red",
               "rgb(110, 119, 129)": "grey"}


@dataclass
class Indicator:
    """What one connection indicator shows: the dot's colour and the figures next to it (or in its
    tooltip when the tile is too small for them)."""

    quality: str  # data-quality: good | fair | poor | none
    colour: str  # green | amber | red | grey (or the CSS colour when it is none of those)
    text: str
    kbps: float | None
    loss_pct: float | None
    rtt_ms: int | None

    @classmethod
    def parse(cls, state: dict[str, Any]) -> Indicator:
        text = str(state["text"])
        rate = re.search(r"(\d+(?:\.\d+)?) (kbps|Mbps)", text)
        loss = re.search(r"(\d+(?:\.\d+)?)%", text)
        rtt = re.search(r"(\d+) ms", text)
        return cls(
            quality=str(state["quality"]),
            colour=DOT_COLOURS.get(str(state["colour"]), str(state["colour"])),
            text=text,
            kbps=float(rate[1]) * (1000 if rate[2] == "Mbps" else 1) if rate else None,
            loss_pct=float(loss[1]) if loss else None,
            rtt_ms=int(rtt[1]) if rtt else None,
        )


class LessonPage:
    """One lesson page in its own browser context (its own camera permission, storage...)."""

    def __init__(self, context: BrowserContext, page: Page, label: str) -> None:
        self.context = context
        self.page = page
        self.label = label
        self.console: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console.append(f"[pageerror] {exc}"))

    def _on_console(self, msg: ConsoleMessage) -> None:
        self.console.append(f"[{msg.type}] {msg.text}")

    # -- what the user sees --------------------------------------------------------------------

    def connection_state(self) -> str:
        return str(self.page.get_attribute("#conn-status", "data-state") or "")

    def wait_connected(self, timeout: float = 20) -> None:
        wait_for(lambda: self.connection_state() == "connected", timeout,
                 f"{self.label}: connection indicator 'connected' (is {self.connection_state()!r})")

    def videos(self, selector: str = "video") -> list[dict[str, Any]]:
        return list(self.page.evaluate(VIDEO_STATE, selector))

    def video(self, selector: str) -> dict[str, Any]:
        found = self.videos(selector)
        assert found, f"{self.label}: no element matches {selector}"
        return found[0]

    def wait_video_playing(self, selector: str, timeout: float = 20) -> dict[str, Any]:
        """A video element shows a picture (videoWidth > 0) and its playback time advances."""
        first = wait_for(lambda: (v := self.videos(selector)) and v[0]["width"] > 0 and v[0], timeout,
                         f"{self.label}: picture in {selector}")
        later = wait_for(lambda: (v := self.video(selector))["time"] > first["time"] + 0.5 and v, timeout,
                         f"{self.label}: {selector} playing (currentTime advancing)")
        return dict(later)

    def audio_energy(self, slot_key: str) -> float:
        """Total energy of the sound received on a slot (getStats): grows while the remote is heard."""
        return float(self.page.evaluate("""async (key) => {
            const app = window.twinclass;
            const slot = app.state.slots.find((s) => s.key === key);
            const tr = slot && app.sub && app.sub.pc.getTransceivers().find((t) => t.mid === String(slot.mid));
            let energy = 0;
            if (tr) (await tr.receiver.getStats()).forEach((s) => {
              if (s.type === "inbound-rtp") energy = s.totalAudioEnergy || 0;
            });
            return energy;
        }""", slot_key))

    def wait_hearing(self, slot_key: str, timeout: float = 15) -> None:
        """Sound arrives on the slot and its <audio> element plays it."""
        start = self.audio_energy(slot_key)
        wait_for(lambda: self.audio_energy(slot_key) > start + 0.01, timeout, f"{self.label}: sound on {slot_key}")
        playing = self.page.evaluate(
            "(key) => { const a = document.querySelector(`audio[data-slot=\"${key}\"]`); return !!a && !a.paused; }",
            slot_key)
        assert playing, f"{self.label}: <audio> for {slot_key} is not playing"

    def tile(self, key: str) -> Any:
        return self.page.locator(f'.tile[data-tile="{key}"]')

    def stage_tile(self) -> str | None:
        """Which tile is shown large: a classroom id, "courseware" or "floor" (None: no large tile)."""
        value = self.page.evaluate("() => document.querySelector('#stage .tile')?.dataset.tile ?? null")
        return None if value is None else str(value)

    def stage_classroom(self) -> str | None:
        """The classroom whose picture is shown large."""
        value = self.page.evaluate("() => document.querySelector('#stage .tile')?.dataset.classroom ?? null")
        return None if value is None else str(value)

    def indicator(self, selector: str) -> Indicator:
        """The connection indicator at `selector`: a tile's `.tile[data-tile="X"] .quality`, or the
        side panel's own uplink `#self-stats`."""
        state = self.page.evaluate(INDICATOR_STATE, selector)
        assert state is not None, f"{self.label}: no indicator at {selector}"
        return Indicator.parse(state)

    def wait_indicator(self, selector: str, predicate: Any, timeout: float, what: str) -> Indicator:
        """The indicator once `predicate(indicator)` holds (it is sampled every 2 s); on timeout the
        error says what it showed last."""
        seen: list[Indicator] = []

        def check() -> Indicator | None:
            seen.append(self.indicator(selector))
            return seen[-1] if predicate(seen[-1]) else None

        try:
            return wait_for(check, timeout, f"{self.label}: {selector} {what}", interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it showed {seen[-1] if seen else None}") from None

    def text(self, selector: str) -> str:
        return str(self.page.locator(selector).inner_text())

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def media_calls(self) -> dict[str, Any]:
        return dict(self.page.evaluate("() => ({...window.__media, peerConnections: undefined})"))

    def senders_with_tracks(self) -> int:
        """How many RTP senders of the page's peer connections carry a track."""
        return int(self.page.evaluate(
            "() => window.__media.peerConnections.filter(pc => pc.connectionState !== 'closed')"
            ".flatMap(pc => pc.getSenders()).filter(s => s.track).length"))

    def outbound_rtp(self) -> int:
        """RTP streams the page sends, from getStats (outbound-rtp entries with packets)."""
        return int(self.page.evaluate("""async () => {
            let n = 0;
            for (const pc of window.__media.peerConnections) {
              if (pc.connectionState === 'closed') continue;
              (await pc.getStats()).forEach(s => { if (s.type === 'outbound-rtp' && s.packetsSent > 0) n += 1; });
            }
            return n;
        }"""))


class LessonPages:
    """The pages a test opened; closes them and saves their console logs."""

    def __init__(self, browser: Browser, test_name: str) -> None:
        self.browser = browser
        self.test_name = test_name
        self.opened: list[LessonPage] = []

    def open_as(self, server: ServerProcess, classroom: str, role: str, **kwargs: Any) -> LessonPage:
        """The page at a classroom's join link (observers: any name; admin: the patrol link)."""
        token = mint_token(server, classroom=classroom, role=role)
        return self.open(server, token, label=kwargs.pop("label", classroom), **kwargs)

    def open(self, server: ServerProcess, token: str, *, label: str, lesson: str = "demo", lang: str | None = None,
             init_script: str | None = None, viewport: tuple[int, int] = (1280, 760)) -> LessonPage:
        context = self.browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        context.add_init_script(MEDIA_PROBE)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        lp = LessonPage(context, page, label)
        self.opened.append(lp)
        url = f"{server.url}/lesson/{lesson}?token={token}" + (f"&lang={lang}" if lang else "")
        page.goto(url)
        return lp

    def close(self) -> None:
        for lp in self.opened:
            save_console_log(self.test_name, lp.label, lp.console)
            try:
                lp.context.close()
            except Exception:  # the browser may already be gone
                pass


def decoded_fps(classrooms: list[Any], remote: str, window_s: float = 3.0, windows: int = 4,
                target: float = 20.0) -> dict[str, float]:
    """Frames per second each Python classroom decoded from `remote`, measured from their stats files
    over consecutive windows after warm-up; each classroom's best window (stops early once every
    classroom reached `target`). On a loaded machine one window can fall short while the stream is fine."""
    best = {c.name: 0.0 for c in classrooms}
    before = {c.name: c.stats() for c in classrooms}
    for _ in range(windows):
        time.sleep(window_s)
        for c in classrooms:
            after = c.stats()
            start = before[c.name]
            frames = after["remotes"][remote]["frames_decoded"] - start["remotes"][remote]["frames_decoded"]
            fps = frames / max(after["updated_at"] - start["updated_at"], 1e-3)
            best[c.name] = round(max(best[c.name], fps), 1)
            before[c.name] = after
        if all(v >= target for v in best.values()):
            break
    return best


def restart_server(server: ServerProcess, down_s: float = 2.0) -> None:
    """Stop the lesson server and start it again on the same port and data (a network loss for every
    client). The fixture's `server` object keeps working and still stops the new process."""
    server.stop()
    time.sleep(down_s)
    server.proc = subprocess.Popen(
        [TWINCLASS, "serve", "--port", str(server.port), "--data-dir", str(server.data_dir), *server.extra_args],
        stdout=server.log.open("ab"), stderr=subprocess.STDOUT, cwd=str(ROOT),
    )
    server.wait_ready()


def start_classroom(classrooms: ClassroomLauncher, classroom: str, role: str, *args: str) -> ClassroomProcess:
    """A `twinclass classroom` process (320x240 test pattern) joining the demo lesson."""
    return classrooms.start(classroom, role, *args, token=mint_token(classrooms.server, classroom=classroom, role=role))
