// Entry point of the lesson page: /lesson/<lesson id>?token=<join token>[&lang=en]

import { initLanguage, preloadGlyphs } from "./i18n.js";
import { LessonApp } from "./lesson.js";

initLanguage();
preloadGlyphs();
const config = JSON.parse(document.getElementById("twinclass-config").textContent || "{}");
const params = new URLSearchParams(location.search);
const lessonId = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
const app = new LessonApp({
  lessonId,
  token: params.get("token"),
  config,
  root: document.getElementById("app"),
});
window.twinclass = app; // for the browser console
document.getElementById("boot").hidden = true;
document.getElementById("app").hidden = false;
app.start();
