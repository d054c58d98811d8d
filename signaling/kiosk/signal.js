// One signalling session over the server's websocket (docs/protocol.md).
//
// Requests carry an `id` and resolve with the server's `ack`/`welcome`, or reject with
// {code, message} from its `error`. Everything else goes to onMessage in arrival order.
// A dropped connection is reopened with back-off and resumed with `hello` + the `session`
// from the earlier `welcome` (the server keeps the booth's place for `grace_s`). A refused
// hello (close 4001: bad or expired token) is final: onFatal says why and nothing retries.
// The token is only ever sent inside the `hello` frame, never in a URL or a log.
// In a cluster (docs/protocol.md, "Clusters") a `hello` may be answered `moved {url}` and
// closed with 4012: the page says `hello` again at that node at once, keeping its session, as
// signaling/client.py does; when that node cannot be reached it starts over at its own.
// `moved` to the answering node itself means no node owns the office yet (a failover): the
// page asks that node again after about a second, without growing its back-off.

const TOKEN_CODES = new Set(["bad_token", "bad_signature", "token_expired", "wrong_office"]);
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const BETWEEN_MS = 1000; // a node said the office is between nodes: ask it again after ~this
const REQUEST_TIMEOUT_MS = 10000;
const SESSION_KEY = "lapak.booth.session";
const MOVED_CLOSE = 4012;
const MAX_MOVES = 3; // `moved` answers followed in a row before backing off

export class RequestError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

export class Signal {
  constructor(token, { onMessage, onWelcome, onStatus, onFatal, backoffMs = BACKOFF_MS,
                      betweenMs = BETWEEN_MS }) {
    this.token = token;
    this.backoffMs = backoffMs;
    this.betweenMs = betweenMs;
    this.betweenAnswers = 0; // `moved` to the node itself: a failover under way
    this.onMessage = onMessage;
    this.onWelcome = onWelcome;
    this.onStatus = onStatus;
    this.onFatal = onFatal;
    this.welcome = null;
    // Survives a reload (not a closed tab): the reloaded page resumes the same session.
    this.session = sessionStorage.getItem(SESSION_KEY);
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.reconnects = 0;
    this.stopped = false;
    this.timer = null;
    this.target = null; // the node a `moved` sent us to; null: the page's own
    this.movedTo = null; // {ws, url} of a `moved` whose close (4012) has not come yet
    this.moves = 0;
  }

  get entryUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  get url() {
    return this.target ?? this.entryUrl;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  open() {
    this.onStatus?.(this.welcome ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.opened = true;
      this.hello(ws);
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event);
    // A connection that never opened: browsers follow the error with a close, some
    // WebSocket implementations (node's) do not; closed() ignores whichever comes second.
    ws.onerror = () => {
      if (!ws.opened) this.closed(ws, { code: 1006 });
    };
  }

  async hello(ws) {
    const message = { type: "hello", token: this.token };
    if (this.session) message.session = this.session;
    try {
      const welcome = await this.request(message);
      if (ws !== this.ws) return;
      if (this.welcome) this.reconnects += 1;
      this.welcome = welcome;
      this.session = welcome.session;
      if (welcome.session) sessionStorage.setItem(SESSION_KEY, welcome.session);
      this.attempt = 0;
      this.moves = 0;
      this.onStatus?.("online");
      this.onWelcome?.(welcome);
    } catch (error) {
      if (error.code && TOKEN_CODES.has(error.code)) {
        this.stopped = true;
        this.onFatal?.(error.code);
      }
      // anything else: the close that follows schedules a retry
    }
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "moved") {
      this.movedTo = { ws: this.ws, url: message.url };
      const waiting = this.pending.get(message.re);
      if (waiting) {
        this.pending.delete(message.re);
        clearTimeout(waiting.timer);
        waiting.reject(new RequestError("moved", `the office is served at ${message.url}`));
      }
      return;
    }
    if ((message.type === "ack" || message.type === "welcome" || message.type === "error")
        && this.pending.has(message.re)) {
      const { resolve, reject, timer } = this.pending.get(message.re);
      this.pending.delete(message.re);
      clearTimeout(timer);
      if (message.type === "error") reject(new RequestError(message.code, message.message));
      else resolve(message);
      return;
    }
    this.onMessage?.(message);
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new RequestError("disconnected", "the connection to the server closed"));
    }
    this.pending.clear();
    if (this.stopped || event.code === 4001) {
      if (!this.stopped) this.onFatal?.("bad_token");
      return;
    }
    const moved = this.movedTo?.ws === ws ? this.movedTo.url : null;
    this.movedTo = null;
    if (event.code === MOVED_CLOSE && moved && moved !== this.url && this.moves < MAX_MOVES) {
      this.moves += 1;
      this.target = moved; // the owner of the office: hello there now, same session
      this.open();
      return;
    }
    if (event.code === MOVED_CLOSE && moved && moved === this.url) {
      // No node owns the office yet (its owner died, the lease is not out): this node is up
      // and takes it within a lease, so ask it again shortly, not after a growing back-off.
      this.askAgainSoon();
      return;
    }
    if (!ws.opened && this.target !== null) {
      // The owner our node named does not answer: it died, its lease not out yet (a
      // failover). Ask our own node again shortly, as when it says "between nodes".
      this.target = null;
      this.moves = 0; // a new try from our own node, not one more hop of a moved chain
      this.askAgainSoon();
      return;
    }
    this.retry();
  }

  askAgainSoon() {
    this.betweenAnswers += 1;
    this.openAfter(this.betweenMs * (0.9 + Math.random() * 0.2)); // no back-off step
  }

  retry() {
    const base = this.backoffMs[Math.min(this.attempt, this.backoffMs.length - 1)];
    this.attempt += 1;
    this.openAfter(base / 2 + Math.random() * base / 2);
  }

  openAfter(delay) {
    this.onStatus?.(this.welcome ? "reconnecting" : "offline", Math.ceil(delay / 1000));
    this.timer = setTimeout(() => this.open(), delay);
  }

  request(message, timeoutMs = REQUEST_TIMEOUT_MS) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new RequestError("disconnected", "not connected to the server"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestError("timeout", `no answer to ${message.type} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...message, id }));
    });
  }
}
