// Which node of a cluster the page talks to when its own is gone: the terminal's rule
// (classroom_client/session.py `_fail_over`, classroom_client/backoff.py), in the page.
//
// A viewer's join reply (listening classroom, observer) lists the cluster's live nodes, least
// loaded first (`nodes`). When the socket breaks (no close from the server: the node died, or the
// line did) the page knocks once more on the same node, after FAILOVER_KNOCK_MS; if that fails, or
// nothing is back within FAILOVER_AFTER_MS, it goes to the next other node, in turn, and joins
// there with the same token (that node places it again): the first move after FAILOVER_DELAY_MS
// ± FAILOVER_JITTER_MS (that node is up), each further one without getting in after the
// reconnection backoff (every node down, or our own line: no storm of attempts). A server that closed the socket itself
// (a restart: `server_stopping`) is waited for: only FAILOVER_FAILURES failed attempts move on.
// The page stays where it was loaded from; socket.io goes to the other node's origin, which the
// page's Content-Security-Policy names (connect-src lists the cluster's nodes,
// twinclass/http_policy.py) and whose server takes the page's Origin (sfu/admission.py).

import { reconnectDelay } from "./signaling.js";

export const FAILOVER_KNOCK_MS = 100;
export const FAILOVER_AFTER_MS = 1500;
export const FAILOVER_FAILURES = 3;
export const FAILOVER_DELAY_MS = 200;
export const FAILOVER_JITTER_MS = 200;

/** `scheme://host[:port]` of an http(s) URL, or null. */
export function originOf(url) {
  try {
    const parsed = new URL(url, location.href);
    return /^https?:$/.test(parsed.protocol) ? parsed.origin : null;
  } catch {
    return null;
  }
}

export class Failover {
  constructor() {
    this.nodes = []; // the last join reply's `nodes`, as origins
    this.moves = 0; // how often we went to another node (cycles through the others)
    this.lostAt = null; // Date.now() when the socket broke (or when we last moved): null while connected
    this.unclean = false; // the line broke (no close from the server)
    this.failures = 0; // failed connection attempts since then
    this.hops = 0; // moves since we were last connected
    this.delayMs = 0; // how long the last move waits before it connects
  }

  /** The join reply's `nodes` (absent for a classroom that publishes: it never fails over). */
  remember(nodes) {
    this.nodes = (Array.isArray(nodes) ? nodes : []).map(originOf).filter(Boolean);
  }

  /** Whether there is a node to go to besides `current`. */
  canMove(current) {
    return this.nodes.some((n) => n !== current);
  }

  lost(unclean) {
    this.lostAt = Date.now();
    this.unclean = unclean;
    this.failures = 0;
  }

  back() {
    this.lostAt = null;
    this.failures = 0;
    this.hops = 0;
  }

  /** A connection attempt to `current` failed: the node to go to now, or null (stay). */
  failed(current) {
    this.failures += 1;
    return this.failures >= (this.unclean ? 1 : FAILOVER_FAILURES) ? this.next(current) : null;
  }

  /** Still not back: how long to wait before asking `due` again (0: due now). */
  waitMs() {
    return this.lostAt === null ? Infinity : Math.max(0, this.lostAt + FAILOVER_AFTER_MS - Date.now());
  }

  /** The next node other than `current`, or null when there is none; connect after `delayMs`. */
  next(current) {
    const others = this.nodes.filter((n) => n !== current);
    if (!others.length) return null;
    const node = others[this.moves % others.length];
    this.moves += 1;
    this.hops += 1;
    this.delayMs = this.hops === 1
      ? FAILOVER_DELAY_MS + (2 * Math.random() - 1) * FAILOVER_JITTER_MS
      : reconnectDelay(this.hops - 1);
    this.lostAt = Date.now() + this.delayMs; // a new wait, for the new node
    this.unclean = true; // a node we were sent to is up: one failed attempt there is enough
    this.failures = 0;
    return node;
  }
}
