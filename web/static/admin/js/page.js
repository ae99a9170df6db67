// What every console page shares: the language switch, errors and notices, and formatting.

import { createI18n } from "../../js/i18n-core.js";
import { showLogin } from "../../study/js/common.js";
import { adminToken } from "./api.js";
import zhCN from "../i18n/zh-CN.js";
import en from "../i18n/en.js";

const i18n = createI18n({
  "zh-CN": zhCN,
  en,
});
export const { language, t } = i18n;

export { el } from "../../study/js/common.js";

/** Language switch and static strings (`render` runs again when the language changes); without an
 * admin token in this tab, who is logged in, with a logout button. */
export function setupPage(render) {
  i18n.setupPage(render);
  if (!adminToken()) showLogin();
}

export function showError(err) {
  const box = document.getElementById("error");
  if (!box) return;
  const status = err && err.status;
  const text = status === 401 ? t("error.token") : status === 403 ? t("error.forbidden") : "";
  box.textContent = [text, err && err.message].filter(Boolean).join(" — ");
  box.hidden = false;
}

export function clearError() {
  const box = document.getElementById("error");
  if (box) box.hidden = true;
}

export function notice(text) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.hidden = !text;
}

export function dateTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(language() === "en" ? "en-GB" : "zh-CN", { dateStyle: "medium", timeStyle: "short" });
}

/** The time of day of an ISO date-time, "09:30" (in the browser's zone, as dateTime shows it). */
export function clockTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString(language() === "en" ? "en-GB" : "zh-CN", { hour: "2-digit", minute: "2-digit" });
}

/** A naive server-local ISO time "2026-12-02T09:00:00" as a datetime-local value. */
export function localInput(iso) {
  return iso ? iso.slice(0, 16) : "";
}
