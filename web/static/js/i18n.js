// Interface language of the lesson page (the shared implementation is ./i18n-core.js).
// All strings live in /static/i18n/<lang>.js, one table per language with the same keys.

import { createI18n } from "./i18n-core.js";
import zhCN from "../i18n/zh-CN.js";
import en from "../i18n/en.js";

const TABLES = { "zh-CN": zhCN, en };

export const { initLanguage, language, otherLanguage, setLanguage, onLanguageChange, t, translateTree } =
  createI18n(TABLES);

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
