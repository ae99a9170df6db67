// Interface language: Simplified Chinese by default, English on request (?lang=en or the switch).
// All strings live in /static/i18n/<lang>.js, one table per language with the same keys.

import zhCN from "../i18n/zh-CN.js";
import en from "../i18n/en.js";

const TABLES = { "zh-CN": zhCN, en };
const DEFAULT = "zh-CN";
const STORAGE_KEY = "twinclass.lang";

let current = DEFAULT;
const listeners = new Set();

function pick(lang) {
  if (!lang) return null;
  if (TABLES[lang]) return lang;
  const base = lang.toLowerCase().split("-")[0];
  if (base === "zh") return "zh-CN";
  return TABLES[base] ? base : null;
}

/** Choose the language once at start: URL ?lang=, then the last choice, then Chinese. */
export function initLanguage() {
  const fromUrl = new URLSearchParams(location.search).get("lang");
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage can be disabled; the default is fine
  }
  current = pick(fromUrl) || pick(stored) || DEFAULT;
  document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
}

export function otherLanguage() {
  return current === "zh-CN" ? "en" : "zh-CN";
}

export function setLanguage(lang) {
  const chosen = pick(lang) || DEFAULT;
  if (chosen === current) return;
  current = chosen;
  document.documentElement.lang = current;
  try {
    localStorage.setItem(STORAGE_KEY, current);
  } catch {
    // not remembered; still switched for this page
  }
  for (const fn of listeners) fn(current);
}

export function onLanguageChange(fn) {
  listeners.add(fn);
}

/** The string for `key` in the current language, with {placeholders} filled from `vars`. */
export function t(key, vars = {}) {
  const table = TABLES[current];
  let text = table[key] ?? TABLES[DEFAULT][key];
  if (text === undefined) {
    console.warn("missing string", key);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** Fill every element with data-i18n="key" (text) or data-i18n-title="key" (tooltip). */
export function translateTree(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

const BUNDLED_FONT = "Noto Sans SC Variable";
const LOCAL_CJK = '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC"';

function hasLocalCjkFont() {
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx) return true;
  const sample = "城乡结对课堂举手发言";
  ctx.font = "20px monospace";
  const fallback = ctx.measureText(sample).width;
  ctx.font = `20px ${LOCAL_CJK}, monospace`;
  return ctx.measureText(sample).width !== fallback;
}

/**
 * On a machine without a Chinese font the page uses the bundled one, whose glyphs come in
 * subsets fetched on first use. Fetch every glyph of the interface now, while the server is
 * reachable, so a later message (e.g. "reconnecting") never shows empty boxes.
 */
export function preloadGlyphs() {
  if (!document.fonts?.load || hasLocalCjkFont()) return;
  const text = [...new Set(Object.values(TABLES).flatMap((table) => Object.values(table)).join(""))].join("");
  document.fonts.load(`16px "${BUNDLED_FONT}"`, text).catch(() => {});
  document.fonts.load(`bold 16px "${BUNDLED_FONT}"`, text).catch(() => {});
}
