// Interface language for the lesson-study pages (the shared implementation is /static/js/i18n-core.js;
// the choice is shared with the lesson page). Strings live in /static/study/i18n/<lang>.js.

import { createI18n } from "../../js/i18n-core.js";
import zhCN from "../i18n/zh-CN.js";
import en from "../i18n/en.js";

export const { initLanguage, language, setLanguage, onLanguageChange, t, translateTree, localName, setupPage } = createI18n({
  "zh-CN": zhCN,
  en,
});
