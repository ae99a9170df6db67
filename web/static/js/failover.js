// Which node of a cluster the page talks to when its own is gone: the terminal's rule
// (classroom_client/session.py `_fail_over`, classroom_client/backoff.py), in the page.
//
// A viewer's join reply (listening classroom, observer) lists the cluster's live nodes, least
// loaded first (`nodes`). When the socket breaks (no close from the server: the node died, or the
// line did) the page knocks once more on the same node, after FAILOVER_KNOCK_MS; if that fails, or
// nothing is back within FAILOVER_AFTER_MS, it goes to the next other node, in turn, and joins
// there with the same token (that node places it again): the first move after FAILOVER_DELAY_MS
// ± FAILOVER_JITTER_MS (that node is up), each further one without getting in after the
// reconnection backoff (every node down, or our own line: no storm of attempts). A server that
// closed the socket itself (a restart: `server_stopping`) is waited for: only FAILOVER_FAILURES
// failed attempts move on.
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

/** The failover state of one page, and the moves of its `Signaling` (sig.moveTo). `onMove()` runs
 * before each move (the page drops its media connections); `stopped()` says the page gave up. */
export class Failover {
  constructor(sig, { onMove = () => {}, stopped = () => false } = {}) {
    this.sig = sig;
    this.onMove = onMove;
    this.stopped = stopped;
    this.nodes = []; // the last join reply's `nodes`, as origins
    this.moves = 0; // how often we went to another node (cycles through the others)
    this.lostAt = null; // Date.now() when the socket broke (or when we last moved): null while connected
    this.unclean = false; // the line broke (no close from the server)
    this.failures = 0; // failed connection attempts since then
    this.hops = 0; // moves since we were last connected
    this.timer = null;
  }

  /** The node the socket is on (an origin). */
  get server() {
    return this.sig.server || location.origin;
  }

  /** The join reply's `nodes` (absent for a classroom that publishes: it never fails over). */
  remember(nodes) {
    this.nodes = (Array.isArray(nodes) ? nodes : []).map(originOf).filter(Boolean);
  }

  connected() {
    this.lostAt = null;
    this.failures = 0;
    this.hops = 0;
    clearTimeout(this.timer);
  }

  /** The socket closed (socket.io's reason): a broken line gets a quick knock on the same node
   * when there is another to go to, and a deadline. */
  disconnected(reason) {
    this._lost(reason !== "io server disconnect" && reason !== "io client disconnect");
    if (this.unclean && this.nodes.some((n) => n !== this.server)) this.sig.retrySoon(FAILOVER_KNOCK_MS);
    this._watch();
  }

  /** A connection attempt failed: after one (a broken line) or FAILOVER_FAILURES (a server that
   * closed us), the next node. */
  connectFailed() {
    this.failures += 1;
    if (this.failures >= (this.unclean ? 1 : FAILOVER_FAILURES)) this._next();
  }

  /** Go to `url`'s node now (a mid-session redirect, or back to the page's own node), counted
   * like a server that closed us. */
  moveTo(url) {
    const target = originOf(url);
    if (!target) return;
    this._lost(false);
    this._go(target, 0);
  }

  _lost(unclean) {
    this.lostAt = Date.now();
    this.unclean = unclean;
    this.failures = 0;
  }

  _next() {
    const others = this.nodes.filter((n) => n !== this.server);
    if (!others.length) return;
    const node = others[this.moves % others.length];
    this.moves += 1;
    this.hops += 1;
    const delayMs = this.hops === 1
      ? FAILOVER_DELAY_MS + (2 * Math.random() - 1) * FAILOVER_JITTER_MS
      : reconnectDelay(this.hops - 1);
    this.lostAt = Date.now() + delayMs; // a new wait, for the new node
    this.unclean = true; // a node we were sent to is up: one failed attempt there is enough
    this.failures = 0;
    this._go(node, delayMs);
  }

  _go(target, delayMs) {
    if (this.stopped()) return;
    console.info("moving to", target, `in ${Math.round(delayMs)} ms`);
    this.onMove();
    this.sig.moveTo(target === location.origin ? null : target, delayMs);
    this._watch();
  }

  /** When the socket is not back within FAILOVER_AFTER_MS of a broken line (or of a move): the next node. */
  _watch() {
    clearTimeout(this.timer);
    if (this.stopped() || this.lostAt === null || !this.unclean) return;
    this.timer = setTimeout(() => {
      if (this.stopped() || this.sig.connected || this.lostAt === null) return;
      if (Date.now() < this.lostAt + FAILOVER_AFTER_MS) return this._watch();
      this._next();
    }, Math.max(0, this.lostAt + FAILOVER_AFTER_MS - Date.now()));
  }
}
