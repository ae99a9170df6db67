// The socket.io session with the lesson server (protocol: sfu/signaling.py).
// Every request is answered through the ack as {ok: true, ...} or {ok: false, error: {code, message}};
// `call` turns that into a resolved value or a thrown SignalingError.

import { io } from "/vendor/socket.io/socket.io.esm.min.js";

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
  constructor() {
    // Same origin as the page. Reconnection is socket.io's own, with a short, capped, jittered
    // backoff (0.5, 1, 2, 2... s ± 30 %, never over 2 s): back within ~2 s of the server (same
    // waits as the terminal, classroom_client/backoff.py).
    this.socket = io({
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: RECONNECT_MAX_MS,
      randomizationFactor: 0.3,
      timeout: 8000,
    });
  }

  /** Server events (joined, hands, floor, ...) and socket events (connect, disconnect, connect_error). */
  on(event, handler) {
    this.socket.on(event, handler);
  }

  /** Reconnection progress: handler(attempt number). */
  onReconnectAttempt(handler) {
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
