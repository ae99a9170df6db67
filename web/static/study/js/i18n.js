// Interface language for the lesson-study pages: Simplified Chinese by default, English on request
// (?lang=en or the switch; the choice is shared with the lesson page). Strings live in
// /static/study/i18n/<lang>.js, one table per language with the same keys.

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

export function initLanguage() {
  const fromUrl = new URLSearchParams(location.search).get("lang");
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage disabled: the default is fine
  }
  current = pick(fromUrl) || pick(stored) || DEFAULT;
  document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
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
  let text = TABLES[current][key] ?? TABLES[DEFAULT][key];
  if (text === undefined) {
    console.warn("missing string", key);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

/** Fill [data-i18n] (text), [data-i18n-title] (tooltip) and [data-i18n-placeholder] elements. */
export function translateTree(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

/** A name that comes in both languages ({name, name_en}) in the current one. */
export function localName(item) {
  return current === "en" ? item.name_en || item.name : item.name;
}
