/* The WebSocket to the server (/ws, protocol 1) and its reconnects.
 *
 * Reports to `onEvent` the session events {type: "connecting"}, {type: "offline", retryAt}
 * and {type: "message", msg}; reconnects with capped exponential backoff and jitter.
 */

const MAX_DELAY_MS = 15000;

/** The wait before reconnect attempt `attempt` (0-based), in ms; `random` in [0, 1). */
export function backoff(attempt, random) {
  const base = Math.min(MAX_DELAY_MS, 500 * 2 ** attempt);
  return Math.round(base * (0.75 + random * 0.5));
}

export function socketUrl(location) {
  return (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + "/ws";
}

export class Connection {
  constructor(url, onEvent) {
    this.url = url;
    this.onEvent = onEvent;
    this.ws = null;
    this.attempts = 0;
    this.timer = null;
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.onEvent({ type: "connecting" });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => {
      if (ws !== this.ws) {
        return;
      }
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg && typeof msg.type === "string") {
        this.attempts = 0;
        this.onEvent({ type: "message", msg });
      }
    };
    ws.onclose = () => {
      if (ws === this.ws) {
        this.ws = null;
        this.scheduleReconnect();
      }
    };
  }

  scheduleReconnect() {
    const delay = backoff(this.attempts, Math.random());
    this.attempts += 1;
    this.timer = setTimeout(() => this.connect(), delay);
    this.onEvent({ type: "offline", retryAt: Date.now() + delay });
  }

  /** Try now instead of waiting for the timer (a no-op while connected or connecting). */
  retryNow() {
    if (this.ws === null) {
      this.connect();
    }
  }

  /** Send one message; false when the socket is not open. */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return false;
    }
    this.ws.send(JSON.stringify(msg));
    return true;
  }
}
