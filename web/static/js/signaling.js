// The socket.io session with the lesson server (protocol: sfu/signaling.py).
// Every request is answered through the ack as {ok: true, ...} or {ok: false, error: {code, message}};
// `call` turns that into a resolved value or a thrown SignalingError. The server is the page's own
// origin until `moveTo` another node of the cluster (failover.js says when and where).

import { io } from "/vendor/socket.io/socket.io.esm.min.js";

export const RECONNECT_FIRST_MS = 500;
export const RECONNECT_MAX_MS = 2000;

/** The wait before reconnection attempt `attempt` (1, 2...): doubling from 0.5 s, ± 30 %, at most 2 s. */
export function reconnectDelay(attempt) {
  const base = 500 * 2 ** Math.min(Math.max(attempt - 1, 0), 4);
  return Math.min(RECONNECT_MAX_MS, base * (0.7 + 0.6 * Math.random()));
}

export class SignalingError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.code = code;
    this.extra = extra; // e.g. {url} with code "redirect": the lesson is live on another node
  }
}

export class Signaling {
  /** `server`: another node's origin (a page whose node died goes on there); null: the page's own. */
  constructor(server = null) {
    this.handlers = []; // [event, handler, onManager]: attached again to the socket of a new server
    this.server = null;
    this.socket = this._open(server);
  }

  _open(server) {
    this.server = server;
    // Reconnection is socket.io's own, with a short, capped, jittered backoff (0.5, 1, 2, 2... s
    // ± 30 %, never over 2 s): back within ~2 s of the server (same waits as the terminal,
    // classroom_client/backoff.py).
    const options = {
      autoConnect: false,
      reconnectionDelay: RECONNECT_FIRST_MS,
      reconnectionDelayMax: RECONNECT_MAX_MS,
      randomizationFactor: 0.3,
      timeout: 8000,
      forceNew: true, // never the cached connection to a server we left
    };
    // another node: straight to websocket (polling's extra round trips delay the failover), polling
    // only if that fails
    const socket = server ? io(server, { ...options, transports: ["websocket", "polling"], tryAllTransports: true })
      : io(options);
    for (const [event, handler, onManager] of this.handlers) (onManager ? socket.io : socket).on(event, handler);
    socket.on("connect", () => socket.io.reconnectionDelay(RECONNECT_FIRST_MS)); // after a `retrySoon`
    return socket;
  }

  /** Server events (joined, hands, floor, ...) and socket events (connect, disconnect, connect_error). */
  on(event, handler) {
    this.handlers.push([event, handler, false]);
    this.socket.on(event, handler);
  }

  /** Reconnection progress: handler(attempt number). */
  onReconnectAttempt(handler) {
    this.handlers.push(["reconnect_attempt", handler, true]);
    this.socket.io.on("reconnect_attempt", handler);
  }

  get connected() {
    return this.socket.connected;
  }

  connect() {
    this.socket.connect();
  }

  disconnect() {
    this.socket.disconnect();
  }

  /** From a `disconnect` handler: knock on this server again after about `ms` (then the usual
   * backoff). A page with other nodes to go to checks quickly whether its node is still there. */
  retrySoon(ms) {
    this.socket.io.reconnectionDelay(ms);
  }

  /** Leave this server quietly (no `disconnect` to our handlers) and connect to `server` (null: the
   * page's own origin) with the same handlers, after `delayMs`. */
  moveTo(server, delayMs = 0) {
    const old = this.socket;
    for (const [event, handler, onManager] of this.handlers) (onManager ? old.io : old).off(event, handler);
    old.disconnect();
    this.socket = this._open(server);
    clearTimeout(this.moveTimer);
    const socket = this.socket;
    this.moveTimer = setTimeout(() => socket.connect(), delayMs);
  }

  async call(event, data = {}, timeoutMs = 15000) {
    let reply;
    try {
      reply = await this.socket.timeout(timeoutMs).emitWithAck(event, data);
    } catch {
      throw new SignalingError("timeout", `${event}: no answer from the server`);
    }
    if (!reply || !reply.ok) {
      const { code, message, ...extra } = (reply && reply.error) || {};
      throw new SignalingError(code || "error", message || `${event} failed`, extra);
    }
    return reply;
  }
}
