// Interface language, shared by the lesson page and the lesson-study pages: Simplified Chinese by
// default, English on request (?lang=en or the switch). Each page family keeps its own string tables
// (one table per language with the same keys) and builds its i18n module with createI18n(tables);
// the choice is remembered under one localStorage key, so it is shared between the pages.

export const DEFAULT_LANGUAGE = "zh-CN";
const STORAGE_KEY = "twinclass.lang";

/** The language functions over `tables` ({"zh-CN": {...}, en: {...}}). */
export function createI18n(tables) {
  let current = DEFAULT_LANGUAGE;
  const listeners = new Set();

  function pick(lang) {
    if (!lang) return null;
    if (tables[lang]) return lang;
    const base = lang.toLowerCase().split("-")[0];
    if (base === "zh") return "zh-CN";
    return tables[base] ? base : null;
  }

  /** Choose the language once at start: URL ?lang=, then the last choice, then Chinese. */
  function initLanguage() {
    const fromUrl = new URLSearchParams(location.search).get("lang");
    let stored = null;
    try {
      stored = localStorage.getItem(STORAGE_KEY);
    } catch {
      // storage can be disabled; the default is fine
    }
    current = pick(fromUrl) || pick(stored) || DEFAULT_LANGUAGE;
    document.documentElement.lang = current;
    return current;
  }

  function language() {
    return current;
  }

  function otherLanguage() {
    return current === "zh-CN" ? "en" : "zh-CN";
  }

  function setLanguage(lang) {
    const chosen = pick(lang) || DEFAULT_LANGUAGE;
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

  function onLanguageChange(fn) {
    listeners.add(fn);
  }

  /** The string for `key` in the current language, with {placeholders} filled from `vars`. */
  function t(key, vars = {}) {
    const text = tables[current][key] ?? tables[DEFAULT_LANGUAGE][key];
    if (text === undefined) {
      console.warn("missing string", key);
      return key;
    }
    return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  }

  /** Fill [data-i18n] (text), [data-i18n-title] (tooltip) and [data-i18n-placeholder] elements. */
  function translateTree(root = document) {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  }

  /** A name that comes in both languages ({name, name_en}) in the current one. */
  function localName(item) {
    return current === "en" ? item.name_en || item.name : item.name;
  }

  /** A page's start: the language chosen, [data-i18n] filled, the #btn-lang switch labelled and
   * wired; `render` runs again whenever the language changes. */
  function setupPage(render) {
    initLanguage();
    const button = document.getElementById("btn-lang");
    const label = () => {
      translateTree(document);
      if (button) button.textContent = t("lang.switch");
    };
    if (button) button.addEventListener("click", () => setLanguage(otherLanguage()));
    onLanguageChange(() => {
      label();
      render();
    });
    label();
  }

  return { initLanguage, language, otherLanguage, setLanguage, onLanguageChange, t, translateTree, localName, setupPage };
}
