// What every lesson-study page shares: the token, the JSON API, the header, formatting helpers.

import { language, setupPage as setupLanguage, t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The token from the page address (?token=…); every API call and link carries it. */
export function token() {
  return new URLSearchParams(location.search).get("token") || "";
}

/** A same-site link that keeps the token (and the language choice). */
export function link(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  if (token()) url.searchParams.set("token", token());
  return url.pathname + url.search;
}

/** An address a <video>/<img>/<a download> can use without headers (?token=). */
export function withToken(path) {
  if (!path) return path;
  const url = new URL(path, location.origin);
  if (token()) url.searchParams.set("token", token());
  return url.pathname + url.search;
}

export async function api(path, { method = "GET", body, accept202 = false } = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok && !(accept202 && resp.status === 202)) {
    throw new ApiError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`);
  }
  if (accept202) return { status: resp.status, data };
  return data;
}

/** Language switch, page title and static strings; `render` runs again when the language changes. */
export function setupPage(render) {
  setupLanguage(render);
  if (!token()) showLogin();
}

/** Without a token in the address: who is logged in, with a logout button, in the top bar
 * (the console's pages call it too; their strings have "session.logout" as well). */
export async function showLogin() {
  const actions = document.querySelector(".topbar .actions");
  const resp = await fetch("/api/session", { headers: { Accept: "application/json" } }).catch(() => null);
  if (!actions || !resp || !resp.ok) return;
  const me = await resp.json();
  const who = el("span", { id: "who", class: "muted" }, me.school ? `${me.name} · ${me.school}` : me.name);
  const logout = el("button", { id: "logout", type: "submit", class: "ghost", "data-i18n": "session.logout" },
    t("session.logout"));
  actions.prepend(who, el("form", { method: "post", action: "/logout", style: "display: inline" }, logout));
}

export function showError(err) {
  const box = document.getElementById("error");
  if (!box) return;
  const status = err && err.status;
  const text = status === 401 ? t("error.token") : status === 403 ? t("error.forbidden") : status === 404 ? t("error.not_found") : "";
  box.textContent = [text, err && err.message].filter(Boolean).join(" — ");
  box.hidden = false;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the CSP (a style attribute is not)
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** 754.2 -> "12:34"; 3723 -> "1:02:03". */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${String(m).padStart(2, "0")}:${sec}`;
}

export function minutes(seconds) {
  return t("unit.minutes", { n: (Math.round((seconds || 0) / 6) / 10).toFixed(1) });
}

export function dateTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(language() === "en" ? "en-GB" : "zh-CN", { dateStyle: "medium", timeStyle: "short" });
}

export function percent(x, digits = 0) {
  return `${(x ?? 0).toFixed(digits)}%`;
}

export function roleName(role) {
  return t(`role.${role}`);
}
