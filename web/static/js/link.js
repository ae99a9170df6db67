// The server's view of this classroom's downlink (the `link` event, sent to us alone about every
// 2 s and when our tier changes) and the tier each slot sends (`slots[].tier`). The server decides
// both from our RTCP; the page only shows them.

import { t } from "./i18n.js";
import { formatLoss, formatRate, formatRtt } from "./stats.js";

const STATE_KEYS = { good: "link.good", weak: "link.weak", bad: "link.bad" };
const TIER_KEYS = { full: "link.tier_full", low: "link.tier_low" };

/** The downlink line: {state: good|weak|bad|none, text, title}. */
export function linkLine(link) {
  if (!link) return { state: "none", text: t("link.none"), title: "" };
  const state = STATE_KEYS[link.state] ? link.state : "none";
  const low = link.tier && link.tier !== "full";
  const text = t(low ? "link.line_low" : "link.line", {
    state: state === "none" ? "—" : t(STATE_KEYS[state]), loss: formatLoss(link.loss), rtt: formatRtt(link.rtt_ms),
  });
  const title = t("link.title", {
    tier: t(TIER_KEYS[link.tier] || TIER_KEYS.full),
    downlink: link.downlink_kbps === null || link.downlink_kbps === undefined ? "—" : formatRate(link.downlink_kbps),
    sent: formatRate(link.sent_kbps),
  });
  return { state, text, title };
}

/** The tooltip part naming a tile's tier. */
export function tierTitle(tier) {
  return t(TIER_KEYS[tier] || TIER_KEYS.low);
}
