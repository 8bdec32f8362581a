// @ts-check
/**
 * The signaling connection: one WebSocket to /ws, JSON messages, a hello
 * first. It reconnects by itself with backoff and jitter unless the server
 * closed it for good (the link is over, someone else took the seat).
 * DOM-free: the page reacts through the callbacks.
 */

/** Close codes after which reconnecting cannot help. */
export const FINAL_CLOSE_CODES = new Set([4000, 4401, 4409, 4410, 4426]);

/**
 * @typedef {object} SignalingOptions
 * @property {string} url                      ws(s) URL of /ws
 * @property {() => object} hello              builds the hello (called per connect)
 * @property {(message: any) => void} onmessage every message from the server
 * @property {(state: "connecting"|"open"|"reconnecting"|"closed",
 *             detail?: {code: number, reason: string}) => void} [onstate]
 */

export class Signaling {
  /** @param {SignalingOptions} options */
  constructor(options) {
    this.options = options;
    /** @type {WebSocket|null} */
    this.socket = null;
    this.attempt = 0;
    this.stopped = false;
    /** @type {ReturnType<typeof setTimeout>|null} */
    this.timer = null;
    this.state = "connecting";
  }

  connect() {
    this.stopped = false;
    this.#open();
  }

  /** @param {object} message */
  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  /**
   * Connect anew now, not after the backoff: the network is back. A socket
   * that still looks open may be a dead TCP connection (a cut link sends
   * no reset), so it is dropped too; the server seats the new one.
   */
  reconnectNow() {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const stale = this.socket;
    this.socket = null;
    stale?.close(1000, "network changed");
    this.#setState("reconnecting");
    this.#open();
  }

  /** Close for good; with `leave` the server records a deliberate hang-up. */
  close(leave = false) {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.socket) {
      if (leave) this.send({ type: "leave" });
      this.socket.close(1000, "bye");
    }
    this.#setState("closed");
  }

  #open() {
    const socket = new WebSocket(this.options.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify(this.options.hello()));
    });
    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "welcome") {
        this.attempt = 0;
        this.#setState("open");
      }
      this.options.onmessage(message);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (FINAL_CLOSE_CODES.has(event.code)) {
        this.stopped = true;
        this.#setState("closed", { code: event.code, reason: event.reason });
        return;
      }
      this.#retry();
    });
  }

  #retry() {
    this.#setState("reconnecting");
    // Exponential backoff with full jitter, so that many browsers do not
    // hammer a restarted server in step. The ceiling stays at 4 s: a call
    // must be back on a restarted server within 5 s.
    const ceiling = Math.min(4000, 500 * 2 ** this.attempt);
    const delay = 250 + Math.random() * ceiling;
    this.attempt += 1;
    this.timer = setTimeout(() => this.#open(), delay);
  }

  /**
   * @param {"connecting"|"open"|"reconnecting"|"closed"} state
   * @param {{code: number, reason: string}} [detail]
   */
  #setState(state, detail) {
    if (this.state === state && !detail) return;
    this.state = state;
    this.options.onstate?.(state, detail);
  }
}
