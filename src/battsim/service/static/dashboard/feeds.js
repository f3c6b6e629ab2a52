/* The WebSockets of the live run and the replay. A message handler only queues the raw text of a
 * telemetry frame (no parsing, no drawing); once per animation frame, drain() parses the queue within a
 * byte budget: when more arrived than the budget allows, frames are skipped evenly (the newest is always
 * kept) and counted as decimated. Other messages (alerts, status, errors) go to the feed's handler now. */
import { API, token } from "./api.js";
import { $, state } from "./page.js";
import { store } from "./store.js";

const PARSE_BUDGET_BYTES = 1.5e6; // telemetry JSON parsed per animation frame, at most
const MAX_QUEUED_BYTES = 64e6; // telemetry text waiting to be parsed (a hidden tab parses nothing)
const TELEMETRY = /^\s*\{\s*"type"\s*:\s*"telemetry"/; // tested on the first bytes only

class Feed {
  constructor(name, path) {
    this.name = name;
    this.path = path;
    this.queue = [];
    this.queuedBytes = 0;
    this.received = 0; // telemetry frames
    this.decimated = 0; // telemetry frames skipped by the parse budget or the queue bound
    this.serverDropped = 0; // frames the server dropped for us (its "dropped" messages)
    this.messages = 0;
    this.socket = null;
    this.wanted = false;
    this.retry = 500;
    this.state = "closed";
    this.handle = () => {}; // (feed, message) for every message but telemetry: set by main.js
  }

  // Connects (and reconnects while wanted); resolves once the socket is open.
  open() {
    this.wanted = true;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) return Promise.resolve();
    if (!this.socket) this.connect();
    return new Promise((resolve, reject) => {
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("close", () => reject(new Error(`${this.name} feed: could not connect`)), { once: true });
    });
  }

  connect() {
    const url = new URL(API + this.path, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    // A browser's WebSocket cannot send headers: the token goes as a subprotocol (see README, Security).
    const socket = token() ? new WebSocket(url, ["battsim", `battsim.token.${token()}`]) : new WebSocket(url);
    this.socket = socket;
    this.setState("connecting");
    socket.onopen = () => { this.retry = 500; this.setState("open"); };
    socket.onmessage = (event) => this.onMessage(event.data);
    socket.onclose = () => {
      this.socket = null;
      this.setState("closed");
      if (this.wanted) setTimeout(() => { if (this.wanted && !this.socket) this.connect(); }, this.retry);
      this.retry = Math.min(this.retry * 2, 8000);
    };
  }

  close() {
    this.wanted = false;
    if (this.socket) this.socket.close();
  }

  setState(value) {
    this.state = value;
    if (this.name === state.view) updateFeedPill();
  }

  onMessage(text) {
    this.messages++;
    if (TELEMETRY.test(text.slice(0, 48))) {
      this.received++;
      if (this.name !== state.view) return;
      this.queue.push(text);
      this.queuedBytes += text.length;
      while (this.queuedBytes > MAX_QUEUED_BYTES && this.queue.length > 1) {
        this.queuedBytes -= this.queue.shift().length;
        this.decimated++;
      }
      return;
    }
    this.handle(this, JSON.parse(text));
  }

  // Parse what is queued, within the budget.
  drain() {
    if (!this.queue.length) return;
    const texts = this.queue, total = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    let chosen = texts;
    if (total > PARSE_BUDGET_BYTES && texts.length > 1) {
      const keep = Math.max(1, Math.floor((texts.length * PARSE_BUDGET_BYTES) / total));
      const stride = texts.length / keep;
      chosen = [];
      for (let k = keep - 1; k >= 0; k--) chosen.push(texts[texts.length - 1 - Math.floor(k * stride)]);
      this.decimated += texts.length - chosen.length;
    }
    for (const text of chosen) store.ingest(JSON.parse(text));
  }
}

export const feeds = { live: new Feed("live", "ws/telemetry"), replay: new Feed("replay", "ws/replay") };

export function updateFeedPill() {
  const feed = feeds[state.view];
  const pill = $("feed-pill");
  pill.dataset.state = feed.state;
  pill.textContent = `${feed.name} feed: ${feed.state}`;
}
