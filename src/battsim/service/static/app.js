/* battsim dashboard: controls for the live simulation and replays, live charts, heat maps, alarms.
 *
 * How it keeps up with the full fleet (1,944 jars at a 1 s interval, or faster than real time):
 * a WebSocket message handler only queues the raw text of a telemetry frame (no parsing, no
 * drawing). Once per animation frame the queue is parsed within a byte budget: when more arrived
 * than the budget allows, frames are skipped evenly (the newest is always kept) and counted as
 * decimated. Each parsed frame updates the latest value of every jar and appends one point to
 * bounded histories that halve their resolution when full, so memory stays flat however long a
 * session runs. Charts and heat maps are redrawn at most once per animation frame, and only when
 * something new arrived.
 *
 * Everything the page shows is also exposed for tests and debugging as window.__battsim.
 */
"use strict";

(() => {
  // ------------------------------------------------------------------------------ constants
  const API = "api/v1/"; // relative to the page, so the dashboard also works behind a path prefix
  const HISTORY = 600; // points kept per series (about a chart's width in pixels); when full, every other is dropped
  const PARSE_BUDGET_BYTES = 1.5e6; // telemetry JSON parsed per animation frame, at most
  const MAX_QUEUED_BYTES = 64e6; // telemetry text waiting to be parsed (a hidden tab parses nothing)
  const MIN_REDRAW_MS = 100; // charts and heat maps redraw at most this often
  const ALARM_LOG = 300; // cleared alarms remembered
  // On load, a running simulation's last hour comes from GET /api/v1/history (thinned to HISTORY points).
  const HISTORY_WINDOW = "1h";
  const TELEMETRY = /^\s*\{\s*"type"\s*:\s*"telemetry"/; // tested on the first bytes only
  const MODES = ["float", "boost", "equalize", "discharge", "disconnected"];
  const MODE_COLORS = { float: "#3ecf8e", boost: "#4fa3ff", equalize: "#b084f5", discharge: "#ff8f3d",
    disconnected: "#ff5c5c", unknown: "#555" };
  const EVENT_COLORS = { outage: "#ff5c5c", disconnect: "#ff5c5c", hvac: "#ff8f3d", scenario: "#4fa3ff",
    alarm: "#f0b429", other: "#8696a8" };

  const $ = (id) => document.getElementById(id);
  const state = {
    view: "live", // which feed the charts show: live | replay
    selected: -1, // jar index shown in the detail panel
    chartSite: "", // strings of this site in the charts ("" = all)
    simStatus: null,
    replayStatus: null,
    recordings: [],
    scenarios: [],
    presets: [],
    shippedTimelines: {},
    replayRecording: null, // the listing entry of the recording being replayed
    replaySpan: null, // {start, end} in seconds, of the recording being replayed
    replayEvents: [],
    seeking: false,
    draws: 0,
    animationFrames: 0,
    parseMs: 0, // main-thread time spent parsing telemetry and updating the store
    drawMs: 0, // and drawing charts, heat maps and the detail
    chartMs: 0, // of which the charts
    heatMs: 0, // and the heat maps
    errors: [],
  };
  const dirty = { data: false, alarms: false, layout: false };

  // ------------------------------------------------------------------------------ formatting
  const fmt = (value, digits) => (value == null || Number.isNaN(value) ? "–" : Number(value).toFixed(digits));
  const isoSeconds = (text) => Date.parse(text) / 1000;
  function timeText(seconds) {
    if (seconds == null || !Number.isFinite(seconds)) return "–";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  const palette = (i) => `hsl(${(i * 137.508) % 360} 70% 62%)`;

  // ------------------------------------------------------------------------------ the server's token
  // A server started with a token (battsim serve --token) needs it on every request. The user opens
  // /#token=... (the fragment never reaches a server, a log or a Referer) or is asked when a request is
  // refused; it is kept in sessionStorage (this tab only) and taken out of the address bar.
  const TOKEN_KEY = "battsim.token";
  const tokenInHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (tokenInHash) {
    sessionStorage.setItem(TOKEN_KEY, tokenInHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = () => sessionStorage.getItem(TOKEN_KEY);
  let tokenDeclined = false; // the user cancelled the prompt: do not ask again on this page

  // ------------------------------------------------------------------------------ HTTP
  async function api(method, path, body) {
    const options = { method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const sent = token();
    if (sent) options.headers.Authorization = `Bearer ${sent}`;
    let response = await fetch(API + path, options);
    if (response.status === 401) {
      // Refused: ask once (requests refused with the same token meanwhile just retry with the new one).
      const asked = token() !== sent ? token()
        : !tokenDeclined && window.prompt("This battsim server needs its access token (battsim serve --token):");
      if (!asked) tokenDeclined = true;
      else {
        sessionStorage.setItem(TOKEN_KEY, asked.trim());
        options.headers.Authorization = `Bearer ${asked.trim()}`;
        response = await fetch(API + path, options);
      }
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (!response.ok) throw new Error(`${method} /api/v1/${path}: ${response.status} ${describeDetail(data)}`);
    return data;
  }
  function describeDetail(data) {
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    if (Array.isArray(detail)) {
      return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
    }
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }
  let toastTimer = null;
  function toast(message, kind = "error") {
    const el = $("toast");
    el.textContent = message;
    el.className = kind === "error" ? "toast" : "toast info";
    el.hidden = false;
    if (kind === "error") state.errors.push(message);
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 12000 : 4000);
  }
  // An answer's message; its warnings (unknown ids the original's endpoints ignore) shown as an error.
  function toastResult(result) {
    if (result.warnings && result.warnings.length) toast(`${result.message}; ${result.warnings.join("; ")}`);
    else toast(result.message, "info");
  }
  // Runs a control action; its error becomes a message on the page (not an exception in the console).
  function action(fn) {
    return async (event) => {
      if (event) event.preventDefault();
      try { await fn(event); } catch (error) { toast(error.message || String(error)); }
    };
  }

  // ------------------------------------------------------------------------------ the data store
  // What the page shows, for the feed being viewed (reset when the view or the run changes). Jars are
  // indexed in the order of the first frame (the server sends fleet order: site, string, position),
  // so a heat-map row is a string and a column a jar's position in it.
  class Store {
    constructor() { this.reset(); }

    reset() {
      this.n = 0;
      this.ids = [];
      this.index = new Map();
      this.sites = [];
      this.strings = [];
      this.jarString = new Int32Array(0);
      this.jarPos = new Int32Array(0);
      this.stringSite = [];
      this.stringSize = [];
      this.framesParsed = 0;
      this.readingsParsed = 0;
      this.lastSeq = null;
      this.simTime = null;
      this.modeCounts = {};
      this.minStringCurrent = null;
      this.clearHistory();
      dirty.layout = true;
      dirty.data = true;
    }

    clearHistory() {
      const s = this.strings.length, n = this.n;
      this.len = 0;
      this.spacing = 0; // seconds of virtual time between kept points (grows as the history is halved)
      this.t = new Float64Array(HISTORY);
      this.sv = new Float32Array(HISTORY * s); // string voltage, V
      this.si = new Float32Array(HISTORY * s); // string current, A
      this.st = new Float32Array(HISTORY * s); // string mean temperature, °C
      this.hv = new Float32Array(HISTORY * n); // per-jar history, for the detail panel
      this.hi = new Float32Array(HISTORY * n);
      this.ht = new Float32Array(HISTORY * n);
    }

    layout(readings) {
      this.ids = readings.map((r) => r.battery_id);
      this.n = this.ids.length;
      this.index = new Map(this.ids.map((id, j) => [id, j]));
      const siteIndex = new Map(), stringIndex = new Map();
      this.sites = []; this.strings = []; this.stringSite = []; this.stringSize = [];
      this.jarString = new Int32Array(this.n);
      this.jarPos = new Int32Array(this.n);
      readings.forEach((r, j) => {
        const site = r.site_id ?? "site", string = r.string_id ?? site;
        if (!siteIndex.has(site)) { siteIndex.set(site, this.sites.length); this.sites.push(site); }
        if (!stringIndex.has(string)) {
          stringIndex.set(string, this.strings.length);
          this.strings.push(string);
          this.stringSite.push(siteIndex.get(site));
          this.stringSize.push(0);
        }
        const s = stringIndex.get(string);
        this.jarString[j] = s;
        this.jarPos[j] = this.stringSize[s]++;
      });
      for (const name of ["v", "i", "temp", "r", "soh", "soc", "amb"]) this[name] = new Float32Array(this.n).fill(NaN);
      this.mode = new Uint8Array(this.n).fill(255);
      this.time = new Array(this.n).fill(null);
      this.maxPerString = Math.max(1, ...this.stringSize);
      this.clearHistory();
      dirty.layout = true;
    }

    ingest(frame) {
      const readings = frame.data || [];
      if (!readings.length) return;
      if (!this.n || readings.some((r) => !this.index.has(r.battery_id))) this.layout(readings);
      const t = isoSeconds(frame.sim_time ?? readings[0].timestamp);
      // Time went backwards (a seek, a loop, a new run): the history restarts, the layout stays.
      if (this.len && t < this.t[this.len - 1]) this.clearHistory();

      const S = this.strings.length;
      const sumV = new Float64Array(S), nV = new Uint16Array(S), sumI = new Float64Array(S), nI = new Uint16Array(S),
        sumT = new Float64Array(S), nT = new Uint16Array(S);
      const modeCounts = {};
      for (const r of readings) {
        const j = this.index.get(r.battery_id), s = this.jarString[j];
        const v = r.voltage_v ?? NaN, i = r.current_a ?? NaN, temp = r.temperature_c ?? NaN;
        this.v[j] = v; this.i[j] = i; this.temp[j] = temp;
        this.r[j] = r.internal_resistance_mohm ?? NaN; this.soh[j] = r.soh_pct ?? NaN;
        this.soc[j] = r.soc_pct ?? NaN; this.amb[j] = r.ambient_c ?? NaN;
        const m = MODES.indexOf(r.mode);
        this.mode[j] = m < 0 ? 255 : m;
        this.time[j] = r.timestamp;
        modeCounts[r.mode] = (modeCounts[r.mode] || 0) + 1;
        if (v === v) { sumV[s] += v; nV[s]++; }
        if (i === i) { sumI[s] += i; nI[s]++; }
        if (temp === temp) { sumT[s] += temp; nT[s]++; }
      }

      const k = this.nextSlot(t);
      const row = k * S;
      let minCurrent = Infinity;
      for (let s = 0; s < S; s++) {
        // A string's voltage is the sum of its jars'; a missing reading counts as the mean of the rest.
        this.sv[row + s] = nV[s] ? (sumV[s] / nV[s]) * this.stringSize[s] : NaN;
        this.si[row + s] = nI[s] ? sumI[s] / nI[s] : NaN;
        this.st[row + s] = nT[s] ? sumT[s] / nT[s] : NaN;
        if (nI[s] && this.si[row + s] < minCurrent) minCurrent = this.si[row + s];
      }
      const n = this.n;
      this.hv.set(this.v, k * n); this.hi.set(this.i, k * n); this.ht.set(this.temp, k * n);

      this.framesParsed++;
      this.readingsParsed += readings.length;
      this.lastSeq = frame.seq ?? this.lastSeq;
      this.simTime = t;
      this.modeCounts = modeCounts;
      this.minStringCurrent = Number.isFinite(minCurrent) ? minCurrent : null;
      dirty.data = true;
    }

    // The history row for a point at virtual time t: a new row, or the last one again while the
    // points are closer than the current spacing (so the newest value is always on the chart).
    nextSlot(t) {
      if (this.len >= 2 && t - this.t[this.len - 2] < this.spacing) {
        this.t[this.len - 1] = t;
        return this.len - 1;
      }
      if (this.len === HISTORY) this.halve();
      this.t[this.len] = t;
      return this.len++;
    }

    halve() {
      const S = this.strings.length, n = this.n, half = HISTORY / 2;
      for (let k = 0; k < half; k++) {
        const from = 2 * k + 1; // keep the later point of each pair, so the last point survives
        this.t[k] = this.t[from];
        for (const [a, w] of [[this.sv, S], [this.si, S], [this.st, S], [this.hv, n], [this.hi, n], [this.ht, n]]) {
          a.copyWithin(k * w, from * w, (from + 1) * w);
        }
      }
      this.len = half;
      this.spacing = (this.t[half - 1] - this.t[0]) / (half - 1);
    }

    stringSeries(strings, array) {
      const S = this.strings.length;
      return strings.map((s) => {
        const out = new Array(this.len);
        for (let k = 0; k < this.len; k++) {
          const value = array[k * S + s];
          out[k] = value === value ? value : null;
        }
        return out;
      });
    }

    jarSeries(j, array) {
      const out = new Array(this.len);
      for (let k = 0; k < this.len; k++) {
        const value = array[k * this.n + j];
        out[k] = value === value ? value : null;
      }
      return out;
    }
  }

  const store = new Store();

  // ------------------------------------------------------------------------------ feeds
  // A WebSocket that queues telemetry text for the animation frame and handles the small messages now.
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
      const message = JSON.parse(text);
      handleMessage(this, message);
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

  const feeds = { live: new Feed("live", "ws/telemetry"), replay: new Feed("replay", "ws/replay") };

  function handleMessage(feed, message) {
    switch (message.type) {
      case "ping":
        return;
      case "alert":
        if (feed.name === state.view) for (const alert of message.data || [message]) addAlarm(alert, message);
        return;
      case "dropped":
        feed.serverDropped = message.dropped_total ?? feed.serverDropped + (message.dropped || 0);
        dirty.data = true;
        return;
      case "status":
        if (feed.name === "live") setSimStatus(message);
        return;
      case "error":
        toast(`${feed.name} feed: ${message.detail || message.message || JSON.stringify(message)}`);
        return;
      case "playback_state":
        setReplayStatus(message);
        return;
      default:
        // A message type this page does not know yet: nothing to show.
    }
  }

  function setView(view) {
    if (state.view === view) return;
    state.view = view;
    for (const feed of Object.values(feeds)) { feed.queue = []; feed.queuedBytes = 0; }
    if (view === "live") {
      feeds.replay.close(); // the replay may go on on the server; this page stops watching it
      replayAlarms.generation++;
      replayAlarms.queue = [];
      replayAlarms.more = false;
    }
    store.reset();
    clearAlarms();
    $("view-name").textContent = view;
    updateFeedPill();
  }

  function updateFeedPill() {
    const feed = feeds[state.view];
    const pill = $("feed-pill");
    pill.dataset.state = feed.state;
    pill.textContent = `${feed.name} feed: ${feed.state}`;
  }

  // ------------------------------------------------------------------------------ alarms
  const alarms = { active: new Map(), log: [], raised: 0, cleared: 0 };

  function clearAlarms() {
    alarms.active.clear();
    alarms.log = [];
    alarms.raised = alarms.cleared = 0;
    dirty.alarms = true;
  }

  function addAlarm(alert, frame) {
    const rule = alert.rule;
    const subject = alert.battery_id ?? alert.string_id;  // a string's alarm (on_battery) names no jar
    const key = `${subject}|${rule}`;
    const item = {
      key, rule, battery_id: subject, site_id: alert.site_id, severity: alert.severity || "warning",
      state: alert.state,
      time: isoSeconds(alert.timestamp ?? frame.sim_time), value: alert.value, unit: alert.unit || "",
      message: alert.message || rule,
    };
    if (item.state === "cleared") {
      alarms.active.delete(key);
      alarms.cleared++;
      alarms.log.unshift(item);
      if (alarms.log.length > ALARM_LOG) alarms.log.length = ALARM_LOG;
    } else {
      alarms.active.set(key, item);
      alarms.raised++;
    }
    dirty.alarms = true;
  }

  function renderAlarms() {
    const severityRank = { critical: 0, warning: 1 };
    const active = [...alarms.active.values()].sort(
      (a, b) => (severityRank[a.severity] ?? 2) - (severityRank[b.severity] ?? 2) || b.time - a.time);
    const rows = active.slice(0, 200).concat(alarms.log.slice(0, Math.max(0, 200 - active.length)));
    $("alarm-rows").innerHTML = rows.map((a) => `
      <tr class="${a.state}" data-battery="${escapeHtml(a.battery_id)}" title="${escapeHtml(a.message)}">
        <td class="mono">${timeText(a.time)}</td>
        <td class="sev-${escapeHtml(a.severity)}">${escapeHtml(a.severity)}</td>
        <td class="mono">${escapeHtml(a.battery_id)}</td>
        <td>${escapeHtml(a.rule)}</td>
        <td>${a.value == null ? "–" : `${fmt(a.value, 2)} ${escapeHtml(a.unit)}`}</td>
        <td>${escapeHtml(a.state)}</td></tr>`).join("");
    const badge = $("alarm-active-count");
    badge.textContent = `${active.length} active · ${alarms.raised} raised · ${alarms.cleared} cleared`;
    badge.classList.toggle("hot", active.length > 0);
    $("alarms").dataset.active = String(active.length);
  }

  // ------------------------------------------------------------------------------ charts
  const uPlotTz = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
  const charts = {};

  function chartWidth(el) { return Math.max(200, el.clientWidth - 16); }

  function makeStringChart(key, elId, label, array) {
    const el = $(elId);
    if (charts[key]) charts[key].plot.destroy();
    const strings = visibleStrings();
    const series = [{ label: "UTC" }].concat(strings.map((s, i) => ({
      label: stringLabel(s), stroke: palette(i), width: 1, spanGaps: false,
      value: (u, v) => fmt(v, 2),
    })));
    const plot = new uPlot({
      width: chartWidth(el), height: 190, tzDate: uPlotTz, series,
      // Live values in the legend only when they fit; many strings get a compact legend of names.
      legend: { show: strings.length <= 40, live: strings.length <= 6 },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [axisStyle({}), axisStyle({ label, size: 66 })],
    }, [[]].concat(strings.map(() => [])), el);
    charts[key] = zoomable({ plot, el, array, strings });
  }

  // Drag on a chart to zoom into a span of time; it stays there while new data arrives (a live chart
  // would otherwise jump back to everything on the next frame). Double-click returns to everything.
  function zoomable(chart) {
    const { plot } = chart;
    chart.zoom = null;
    plot.hooks.setSelect = [(u) => {
      if (u.select.width > 0) chart.zoom = { min: u.posToVal(u.select.left, "x"), max: u.posToVal(u.select.left + u.select.width, "x") };
    }];
    plot.over.addEventListener("dblclick", () => { chart.zoom = null; });
    return chart;
  }

  function show(chart, data) {
    chart.plot.batch(() => {
      chart.plot.setData(data);
      if (chart.zoom) chart.plot.setScale("x", chart.zoom);
    });
  }

  function axisStyle(extra) {
    return { stroke: "#8696a8", grid: { stroke: "#2c384766" }, ticks: { stroke: "#2c3847" }, ...extra };
  }

  function makeDetailChart() {
    const el = $("chart-detail");
    if (charts.detail) charts.detail.plot.destroy();
    const plot = new uPlot({
      width: chartWidth(el), height: 200, tzDate: uPlotTz,
      series: [
        { label: "UTC" },
        { label: "Voltage, V", stroke: "#4fa3ff", scale: "V", value: (u, v) => fmt(v, 3) },
        { label: "Current, A", stroke: "#ff8f3d", scale: "A", value: (u, v) => fmt(v, 3) },
        { label: "Temperature, °C", stroke: "#f06292", scale: "C", value: (u, v) => fmt(v, 2) },
      ],
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [axisStyle({}), axisStyle({ scale: "V", label: "V", size: 62 }),
        axisStyle({ scale: "A", label: "A", side: 1, size: 48, grid: { show: false } }),
        axisStyle({ scale: "C", label: "°C", side: 1, size: 44, grid: { show: false } })],
    }, [[], [], [], []], el);
    charts.detail = zoomable({ plot, el });
  }

  // The shortest name that tells a chart's lines apart: the site when it has one string, the string
  // within its site when one site is shown, else the whole string id.
  function stringLabel(s) {
    const site = store.sites[store.stringSite[s]];
    if (store.stringSite.filter((x) => x === store.stringSite[s]).length === 1) return site;
    return state.chartSite ? store.strings[s].replace(`${site}_`, "") : store.strings[s];
  }

  function visibleStrings() {
    const all = store.strings.map((_, s) => s);
    if (!state.chartSite) return all;
    const site = store.sites.indexOf(state.chartSite);
    return all.filter((s) => store.stringSite[s] === site);
  }

  function rebuildCharts() {
    makeStringChart("voltage", "chart-voltage", "V", "sv");
    makeStringChart("current", "chart-current", "A", "si");
    makeStringChart("temperature", "chart-temperature", "°C", "st");
    makeDetailChart();
    makeDeviationChart(-1);
  }

  // Each jar of string s, in mV from the mean of the string's jars at the same moment: on float the
  // jars of a healthy string sit within tens of mV, and a drifting jar stands out (issue 16, point 5).
  function makeDeviationChart(s) {
    const el = $("chart-deviation");
    if (charts.deviation) charts.deviation.plot.destroy();
    const jars = s < 0 ? [] : store.ids.map((_, j) => j).filter((j) => store.jarString[j] === s);
    const series = [{ label: "UTC" }].concat(jars.map((j, i) => ({
      label: `#${store.jarPos[j] + 1}`, stroke: palette(i), width: 1, value: (u, v) => fmt(v, 0) })));
    const plot = new uPlot({
      width: chartWidth(el), height: 170, tzDate: uPlotTz, series,
      legend: { show: jars.length <= 40, live: false },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [axisStyle({}), axisStyle({ label: "mV", size: 56 })],
    }, [[]].concat(jars.map(() => [])), el);
    charts.deviation = zoomable({ plot, el, string: s, jars });
    el.dataset.string = s < 0 ? "" : store.strings[s];
  }

  function deviationSeries(jars) {
    const n = store.n, out = jars.map(() => new Array(store.len));
    for (let k = 0; k < store.len; k++) {
      let sum = 0, count = 0;
      for (const j of jars) { const v = store.hv[k * n + j]; if (v === v) { sum += v; count++; } }
      const mean = count ? sum / count : NaN;
      jars.forEach((j, i) => { const v = (store.hv[k * n + j] - mean) * 1000; out[i][k] = v === v ? v : null; });
    }
    return out;
  }

  function drawCharts() {
    const x = Array.from(store.t.subarray(0, store.len));
    for (const key of ["voltage", "current", "temperature"]) {
      const chart = charts[key];
      const ys = store.stringSeries(chart.strings, store[chart.array]);
      show(chart, [x].concat(ys));
      chart.el.dataset.points = String(x.length * ys.length);
      chart.el.dataset.series = String(ys.length);
    }
    const j = state.selected;
    const detail = charts.detail;
    if (j >= 0 && j < store.n) {
      show(detail, [x, store.jarSeries(j, store.hv), store.jarSeries(j, store.hi), store.jarSeries(j, store.ht)]);
      detail.el.dataset.points = String(x.length);
    } else {
      show(detail, [[], [], [], []]);
      detail.el.dataset.points = "0";
    }
    const s = j >= 0 && j < store.n ? store.jarString[j] : -1;
    if (charts.deviation.string !== s) makeDeviationChart(s);
    const deviation = charts.deviation;
    const ys = deviationSeries(deviation.jars);
    show(deviation, [x].concat(ys));
    deviation.el.dataset.points = String(ys.length ? x.length * ys.length : 0);
    deviation.el.dataset.series = String(ys.length);
  }

  // ------------------------------------------------------------------------------ heat maps
  // Colour scales: 256-entry lookup tables, so a redraw of 1,944 cells formats no colour strings.
  function ramp(stops) {
    const table = [];
    for (let k = 0; k < 256; k++) {
      const x = k / 255;
      let a = stops[0], b = stops[stops.length - 1];
      for (let s = 0; s < stops.length - 1; s++) if (x >= stops[s][0] && x <= stops[s + 1][0]) { a = stops[s]; b = stops[s + 1]; break; }
      const f = b[0] === a[0] ? 0 : (x - a[0]) / (b[0] - a[0]);
      const c = [1, 2, 3].map((i) => Math.round(a[i] + (b[i] - a[i]) * f));
      table.push(`rgb(${c[0]},${c[1]},${c[2]})`);
    }
    return table;
  }
  // Temperature: blue when cold, green around a conditioned room's 25 °C, orange at the 35 °C alarm, dark red at 45.
  const TEMP_RAMP = ramp([[0, 49, 54, 149], [0.2, 69, 117, 180], [0.33, 62, 170, 100], [0.5, 254, 224, 139],
    [0.67, 244, 109, 67], [1, 140, 0, 30]]);
  const SOH_RAMP = ramp([[0, 165, 0, 38], [0.4, 244, 109, 67], [0.6, 254, 224, 139], [0.8, 166, 217, 106], [1, 26, 152, 80]]);

  class HeatMap {
    constructor(elId, { value, color, scale, describe }) {
      this.el = $(elId);
      this.canvas = this.el.querySelector("canvas");
      this.value = value;
      this.color = color;
      this.describe = describe;
      this.el.querySelector(".scale").innerHTML = scale;
      this.geometry = null;
      this.canvas.addEventListener("mousemove", (event) => this.hover(event));
      this.canvas.addEventListener("mouseleave", () => { $("heat-tooltip").hidden = true; });
      this.canvas.addEventListener("click", (event) => {
        const j = this.jarAt(event);
        if (j >= 0) select(j);
      });
    }

    resize() {
      const rows = Math.max(1, store.strings.length), cols = store.maxPerString || 1;
      const labels = store.sites.length > 1 ? 64 : 0;
      const width = Math.max(120, this.canvas.clientWidth || this.el.clientWidth - 16);
      const rowH = Math.max(3, Math.min(22, Math.floor(320 / rows)));
      const height = rows * rowH;
      const ratio = window.devicePixelRatio || 1;
      this.canvas.width = Math.round(width * ratio);
      this.canvas.height = Math.round(height * ratio);
      this.canvas.style.height = `${height}px`;
      const ctx = this.canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      this.geometry = { rows, cols, labels, width, height, rowH, colW: (width - labels) / cols };
    }

    draw() {
      if (!this.geometry) this.resize();
      const { labels, width, height, rowH, colW } = this.geometry;
      const ctx = this.canvas.getContext("2d");
      ctx.fillStyle = "#18202a";
      ctx.fillRect(0, 0, width, height);
      const gap = colW > 4 && rowH > 4 ? 1 : 0;
      for (let j = 0; j < store.n; j++) {
        ctx.fillStyle = this.color(this.value(j));
        ctx.fillRect(labels + store.jarPos[j] * colW, store.jarString[j] * rowH, colW - gap, rowH - gap);
      }
      // Site labels at the first string of each site, and a line between sites.
      ctx.font = "10px system-ui, sans-serif";
      ctx.textBaseline = "top";
      let previous = -1;
      for (let s = 0; s < store.strings.length; s++) {
        const site = store.stringSite[s];
        if (site === previous) continue;
        previous = site;
        if (labels) {
          ctx.fillStyle = "#8696a8";
          ctx.fillText(store.sites[site], 2, s * rowH + Math.max(0, (rowH - 11) / 2));
        }
        if (s > 0) { ctx.fillStyle = "#10151c"; ctx.fillRect(labels, s * rowH - 1, width - labels, 1); }
      }
      const j = state.selected;
      if (j >= 0 && j < store.n) {
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 2;
        ctx.strokeRect(labels + store.jarPos[j] * colW + 1, store.jarString[j] * rowH + 1,
          Math.max(2, colW - 2), Math.max(2, rowH - 2));
      }
      this.el.dataset.cells = String(store.n);
    }

    jarAt(event) {
      if (!this.geometry || !store.n) return -1;
      const rect = this.canvas.getBoundingClientRect();
      const { labels, rowH, colW } = this.geometry;
      const col = Math.floor((event.clientX - rect.left - labels) / colW), row = Math.floor((event.clientY - rect.top) / rowH);
      if (col < 0 || row < 0 || row >= store.strings.length) return -1;
      for (let j = 0; j < store.n; j++) if (store.jarString[j] === row && store.jarPos[j] === col) return j;
      return -1;
    }

    hover(event) {
      const tip = $("heat-tooltip");
      const j = this.jarAt(event);
      if (j < 0) { tip.hidden = true; return; }
      tip.textContent = `${store.ids[j]}\n${this.describe(j)}\nV ${fmt(store.v[j], 3)}  A ${fmt(store.i[j], 2)}  `
        + `SOC ${fmt(store.soc[j], 1)} %\nmode ${MODES[store.mode[j]] ?? "?"}  (click to select)`;
      tip.style.left = `${event.clientX + 14}px`;
      tip.style.top = `${event.clientY + 14}px`;
      tip.hidden = false;
    }
  }

  const TEMP_RANGE = [15, 45], SOH_RANGE = [60, 100];
  const lookup = (table, [lo, hi]) => (v) => (v === v ? table[Math.max(0, Math.min(255, Math.round(((v - lo) / (hi - lo)) * 255)))] : "#444");
  const gradient = (table) => `linear-gradient(90deg, ${[0, 64, 128, 192, 255].map((k) => table[k]).join(",")})`;
  const heatMaps = [
    new HeatMap("heat-temperature", {
      value: (j) => store.temp[j], color: lookup(TEMP_RAMP, TEMP_RANGE),
      scale: `<span>${TEMP_RANGE[0]}</span><span class="bar" style="background:${gradient(TEMP_RAMP)}"></span><span>${TEMP_RANGE[1]} °C</span>`,
      describe: (j) => `temperature ${fmt(store.temp[j], 2)} °C (room ${fmt(store.amb[j], 1)} °C)`,
    }),
    new HeatMap("heat-soh", {
      value: (j) => store.soh[j], color: lookup(SOH_RAMP, SOH_RANGE),
      scale: `<span>${SOH_RANGE[0]}</span><span class="bar" style="background:${gradient(SOH_RAMP)}"></span><span>${SOH_RANGE[1]} %</span>`,
      describe: (j) => `state of health ${fmt(store.soh[j], 2)} %`,
    }),
    new HeatMap("heat-mode", {
      value: (j) => store.mode[j], color: (m) => MODE_COLORS[MODES[m] ?? "unknown"],
      scale: MODES.map((m) => `<span><i class="swatch" style="background:${MODE_COLORS[m]}"></i>${m}</span>`).join(" "),
      describe: (j) => `mode ${MODES[store.mode[j]] ?? "?"}`,
    }),
  ];

  // ------------------------------------------------------------------------------ the selected battery
  function select(j) {
    state.selected = j;
    $("detail-id").textContent = store.ids[j] ?? "";
    dirty.data = true;
  }

  function renderDetail() {
    const j = state.selected;
    if (j < 0 || j >= store.n) { $("detail-fields").innerHTML = ""; return; }
    const active = [...alarms.active.values()].filter((a) => a.battery_id === store.ids[j]).map((a) => a.rule);
    const fields = [
      ["Site", store.sites[store.stringSite[store.jarString[j]]]], ["String", store.strings[store.jarString[j]]],
      ["Mode", MODES[store.mode[j]] ?? "?"], ["Reading", timeText(isoSeconds(store.time[j]))],
      ["Voltage", `${fmt(store.v[j], 3)} V`], ["Current", `${fmt(store.i[j], 3)} A`],
      ["Temperature", `${fmt(store.temp[j], 2)} °C`], ["Room", `${fmt(store.amb[j], 2)} °C`],
      ["Resistance", `${fmt(store.r[j], 3)} mΩ`], ["SOH", `${fmt(store.soh[j], 2)} %`],
      ["SOC", `${fmt(store.soc[j], 2)} %`], ["Alarms", active.length ? active.join(", ") : "none"],
    ];
    $("detail-fields").innerHTML = fields.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join("");
  }

  // ------------------------------------------------------------------------------ the frame loop
  let lastDraw = 0, lastDrawCost = 0;
  function animate(now) {
    requestAnimationFrame(animate);
    state.animationFrames++;
    const began = performance.now();
    feeds[state.view].drain();
    if (state.view === "replay" && store.simTime != null) advanceReplayAlarms();
    const parsed = performance.now();
    state.parseMs += parsed - began;
    if (dirty.layout && store.n) {
      dirty.layout = false;
      fillTargetPickers();
      rebuildCharts();
      for (const map of heatMaps) map.resize();
      if (state.selected < 0 || state.selected >= store.n) select(0);
      else $("detail-id").textContent = store.ids[state.selected];
    }
    // Redraw when something changed, at most every MIN_REDRAW_MS, and never more often than keeps
    // drawing under about a fifth of the main thread (a big fleet's draw takes longer).
    if (dirty.data && now - lastDraw >= Math.max(MIN_REDRAW_MS, 4 * lastDrawCost)) {
      dirty.data = false;
      lastDraw = now;
      const drawing = performance.now();
      if (store.n) {
        drawCharts();
        const charted = performance.now();
        state.chartMs += charted - drawing;
        for (const map of heatMaps) map.draw();
        state.heatMs += performance.now() - charted;
        renderDetail();
      }
      renderStrip();
      if (state.view === "replay" && store.simTime != null) setSeekPosition(store.simTime);
      state.draws++;
      lastDrawCost = performance.now() - drawing;
      state.drawMs += lastDrawCost;
    }
    if (dirty.alarms) {
      dirty.alarms = false;
      renderAlarms();
      renderDetail();
    }
  }

  function renderStrip() {
    const feed = feeds[state.view];
    $("empty").hidden = store.n > 0;
    $("sim-time").textContent = timeText(store.simTime);
    $("jar-count").textContent = String(store.n);
    $("frame-count").textContent = `${store.framesParsed} drawn of ${feed.received}`;
    $("mode-counts").textContent = Object.entries(store.modeCounts).map(([m, c]) => `${m} ${c}`).join(" · ") || "–";
    const notes = [];
    if (feed.decimated) notes.push(`${feed.decimated} frames skipped by the page`);
    if (feed.serverDropped) notes.push(`${feed.serverDropped} dropped by the server`);
    $("drop-note").textContent = notes.join("; ");
  }

  // ------------------------------------------------------------------------------ simulation controls
  function setSimStatus(status) {
    const previous = state.simStatus;
    state.simStatus = status;
    // A new run (a new recording) starts the live charts afresh.
    if (state.view === "live" && previous && status.recording_id && previous.recording_id !== status.recording_id) {
      store.reset();
      clearAlarms();
    }
    const rows = [
      ["State", status.is_running ? (status.is_paused ? "paused" : "running") : (status.error ? `failed: ${status.error}` : "stopped")],
      ["Fleet", status.preset || status.fleet || "–"], ["Batteries", status.batteries_count],
      ["Speed", status.speed != null ? `${status.speed}×` : "–"], ["Interval", status.interval_seconds ? `${status.interval_seconds} s` : "–"],
      ["Seed", status.seed ?? "–"], ["Sim time", status.sim_time ? timeText(isoSeconds(status.sim_time)) : "–"],
      ["Readings", (status.readings_generated ?? 0).toLocaleString("en")],
      ["Recording", status.recording_path ? status.recording_path.split(/[\\/]/).pop() : "–"],
      ["Timelines", (status.timelines || []).join(", ") || "–"],
      ["Alarms now", status.active_alarms ?? "–"],
    ];
    $("sim-status").innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join("");
    const running = !!status.is_running;
    $("start").disabled = running;
    $("stop").disabled = !running;
    $("pause").disabled = !running || status.is_paused;
    $("resume").disabled = !running || !status.is_paused;
    $("speed-apply").disabled = !running;
    $("apply-scenario").disabled = !running;
    $("clear-scenario").disabled = !running;
    $("clear-all").disabled = !running;
    $("load-timeline").disabled = !running;
    renderActiveScenarios(status.active_scenarios || []);
  }

  function renderActiveScenarios(active) {
    $("active-scenarios").innerHTML = active.map((a) => {
      const targets = Object.entries(a.targets || {}).map(([kind, ids]) => `${kind}: ${ids.join(", ")}`).join("; ");
      const params = a.params && Object.keys(a.params).length ? ` ${JSON.stringify(a.params)}` : "";
      return `<li><b>${escapeHtml(a.name)}</b> on ${escapeHtml(targets || "the fleet")} (${a.jars} jars)${escapeHtml(params)}`
        + `<br><span class="hint">since ${timeText(isoSeconds(a.since))}${a.until ? `, until ${timeText(isoSeconds(a.until))}` : ""}`
        + ` · ${escapeHtml(a.source)}</span></li>`;
    }).join("");
  }

  async function refreshSimStatus() { setSimStatus(await api("GET", "simulation/status")); }

  // The running simulation's settings in the form, so that Start or Set does not silently change them.
  function fillForm(status) {
    if (status.preset && state.presets.some((p) => p.name === status.preset)) { $("preset").value = status.preset; describePreset(); }
    if (status.seed != null) $("seed").value = status.seed;
    if (status.interval_seconds) $("interval").value = status.interval_seconds;
    if (status.speed != null) $("speed").value = status.speed;
  }

  // On load: the running simulation's recent history (from its recording) and the alarms active now.
  async function loadLiveHistory() {
    const status = state.simStatus;
    if (!status || !status.is_running) return;
    fillForm(status);
    const [history, alarmList] = await Promise.all([
      api("GET", `history?window=${HISTORY_WINDOW}&max_frames=${HISTORY}`), api("GET", "alarms")]);
    if (state.view !== "live") return;
    // Frames the live feed brought meanwhile are newer: history goes first, then they follow.
    const liveSince = store.len ? store.t[0] : Infinity;
    const older = history.frames.filter((f) => isoSeconds(f.sim_time) < liveSince);
    if (older.length && store.len) store.clearHistory();
    for (const frame of older) store.ingest(frame);
    const severity = new Map(alarmList.rules.map((r) => [r.rule, r.severity]));
    for (const alert of alarmList.active) {
      addAlarm({ ...alert, state: "raised", severity: severity.get(alert.rule) }, { sim_time: status.sim_time });
    }
    state.historyFrames = older.length;
    dirty.data = true;
  }

  async function loadPresets() {
    const presets = await api("GET", "presets");
    state.presets = Array.isArray(presets) ? presets : Object.entries(presets).map(([name, description]) => ({ name, description }));
    const select = $("preset");
    select.innerHTML = state.presets.map((p) => `<option value="${escapeHtml(p.name)}">${escapeHtml(p.name)}`
      + `${p.batteries ? ` (${p.batteries} jars)` : ""}</option>`).join("");
    if (state.presets.some((p) => p.name === "thailand-9x24")) select.value = "thailand-9x24";
    describePreset();
  }
  function describePreset() {
    const preset = state.presets.find((p) => p.name === $("preset").value);
    $("preset-description").textContent = preset ? preset.description || "" : "";
  }

  const entries = (n) => `${n} ${n === 1 ? "entry" : "entries"}`;

  async function loadTimelines() {
    const data = await api("GET", "timeline");
    state.shippedTimelines = data.shipped || {};
    const names = Object.keys(state.shippedTimelines);
    const options = names.map((n) => `<option value="${escapeHtml(n)}">${escapeHtml(n)}</option>`).join("");
    $("start-timeline").innerHTML = `<option value="">none</option>${options}`;
    $("timeline-name").innerHTML = `<option value="">(paste or open a file)</option>${options}`;
    $("timeline-current").textContent = (data.installed || []).map((t) =>
      `${t.source}: ${entries((t.events || []).length)}`).join("\n");
  }

  // The scenario builder (builder.js) starts a simulation with its timeline's TOML as Start would.
  let builderTimeline = null;
  const startSimulation = action(async () => {
    const speed = Number($("speed").value), seed = Number($("seed").value), interval = Number($("interval").value);
    const body = { preset: $("preset").value, seed, speed, interval_seconds: interval };
    if (builderTimeline) body.timeline = builderTimeline;
    else if ($("start-timeline").value) body.timeline = $("start-timeline").value;
    builderTimeline = null;
    setView("live");
    store.reset();
    clearAlarms();
    const result = await api("POST", "simulation/start", body);
    toast(result.message, "info");
    await refreshSimStatus();
    await loadTimelines();
    document.dispatchEvent(new CustomEvent("battsim:simulation-changed"));
  });
  document.addEventListener("battsim:start-with-timeline", (event) => { builderTimeline = event.detail; startSimulation(); });
  document.addEventListener("battsim:timeline-installed", () => {
    loadTimelines().then(refreshSimStatus).catch((error) => toast(error.message));
  });

  const simulationCommand = (path, body) => action(async () => {
    setSimStatus(await api("POST", path, typeof body === "function" ? body() : body));
  });

  // ------------------------------------------------------------------------------ scenario controls
  async function loadScenarios() {
    state.scenarios = await api("GET", "scenarios");
    $("scenario").innerHTML = state.scenarios.map((s) =>
      `<option value="${escapeHtml(s.scenario)}">${escapeHtml(s.name || s.scenario)}</option>`).join("");
    if (state.scenarios.some((s) => s.scenario === "power_outage")) $("scenario").value = "power_outage";
    renderScenarioParams();
  }

  // One input per parameter, from the scenario's JSON schema (type, bounds, enum, default, description).
  function renderScenarioParams() {
    const spec = state.scenarios.find((s) => s.scenario === $("scenario").value);
    $("scenario-description").textContent = spec ? `${spec.description}${spec.scope ? ` (acts per ${spec.scope})` : ""}` : "";
    const parameters = (spec && spec.parameters) || {};
    $("scenario-params").innerHTML = Object.entries(parameters).map(([name, schema]) => {
      const label = `${escapeHtml(schema.title || name)}`;
      const hint = schema.description ? `<p class="hint">${escapeHtml(schema.description)}</p>` : "";
      if (schema.enum) {
        const options = schema.enum.map((v) => `<option${v === schema.default ? " selected" : ""}>${escapeHtml(v)}</option>`).join("");
        return `<label>${label}<select data-param="${escapeHtml(name)}" data-kind="string">${options}</select></label>${hint}`;
      }
      const numeric = schema.type === "number" || schema.type === "integer";
      const bounds = ["minimum", "maximum"].map((b) => (schema[b] != null ? ` ${b.slice(0, 3)}="${schema[b]}"` : "")).join("");
      return `<label>${label}<input data-param="${escapeHtml(name)}" data-kind="${numeric ? "number" : "string"}"`
        + ` type="${numeric ? "number" : "text"}" step="any"${bounds} value="${escapeHtml(schema.default ?? "")}"></label>${hint}`;
    }).join("");
  }

  function scenarioParams() {
    const params = {};
    for (const input of $("scenario-params").querySelectorAll("[data-param]")) {
      if (input.value === "") continue;
      params[input.dataset.param] = input.dataset.kind === "number" ? Number(input.value) : input.value;
    }
    return params;
  }

  function selectedOptions(id) { return [...$(id).selectedOptions].map((o) => o.value); }

  function targets() {
    const body = {};
    const sites = selectedOptions("target-sites"), strings = selectedOptions("target-strings");
    const batteries = $("target-batteries").value.split(/[\s,]+/).filter(Boolean);
    if (sites.length) body.site_ids = sites;
    if (strings.length) body.string_ids = strings;
    if (batteries.length) body.battery_ids = batteries;
    return body;
  }

  // "30min", "2h", "90 s", "1.5h" or a number of seconds.
  function durationSeconds(text) {
    const t = text.trim();
    if (!t) return null;
    const match = /^(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)?$/i.exec(t);
    if (!match) throw new Error(`duration: ${JSON.stringify(text)} is not a duration (e.g. 90s, 30min, 2h, 1d)`);
    const unit = (match[2] || "s").toLowerCase()[0];
    return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[unit];
  }

  function fillTargetPickers() {
    const keep = (id) => new Set(selectedOptions(id));
    const sites = keep("target-sites"), strings = keep("target-strings");
    $("target-sites").innerHTML = store.sites.map((s) => `<option${sites.has(s) ? " selected" : ""}>${escapeHtml(s)}</option>`).join("");
    $("target-strings").innerHTML = store.strings.map((s) => `<option${strings.has(s) ? " selected" : ""}>${escapeHtml(s)}</option>`).join("");
    const chartSite = $("chart-site");
    chartSite.innerHTML = `<option value="">all sites</option>${store.sites.map((s) => `<option>${escapeHtml(s)}</option>`).join("")}`;
    if (!store.sites.includes(state.chartSite)) state.chartSite = "";
    chartSite.value = state.chartSite;
  }

  const applyScenario = action(async () => {
    const body = { scenario: $("scenario").value, ...targets() };
    const params = scenarioParams();
    if (Object.keys(params).length) body.params = params;
    const duration = durationSeconds($("scenario-duration").value);
    if (duration != null) body.duration_s = duration;
    const result = await api("POST", "scenarios/apply", body);
    toastResult(result);
    renderActiveScenarios(result.active_scenarios || []);
  });

  const clearScenario = (everything) => action(async () => {
    const result = await api("POST", "scenarios/clear", everything ? undefined : targets());
    toastResult(result);
    renderActiveScenarios(result.active_scenarios || []);
  });

  const loadTimeline = action(async () => {
    // A shipped timeline left as shipped goes by its name (so it is recorded as that); edited, as TOML.
    const name = $("timeline-name").value, text = $("timeline-text").value;
    const timeline = name && (!text.trim() || text === state.shippedTimelines[name]) ? name : text.trim();
    if (!timeline) throw new Error("timeline: choose a shipped timeline, paste TOML or open a file");
    const result = await api("POST", "timeline", { timeline });
    toast(`Timeline ${result.source} installed: ${entries((result.events || []).length)}`, "info");
    await loadTimelines();
    await refreshSimStatus();
  });

  // ------------------------------------------------------------------------------ replay controls
  // Recordings are listed by GET /recordings (id = the file name without .duckdb); a replay streams on
  // /ws/replay as telemetry frames plus playback_state frames after every command and change of state.
  async function loadRecordings() {
    state.recordings = await api("GET", "recordings");
    const select = $("recording"), previous = select.value;
    select.innerHTML = state.recordings.map((r) => `<option value="${escapeHtml(r.id)}">${escapeHtml(recordingLabel(r))}</option>`)
      .join("") || `<option value="">no recordings yet</option>`;
    if (state.recordings.some((r) => r.id === previous)) select.value = previous;
    describeRecording();
  }
  function recordingLabel(r) {
    return `${r.file || r.id}${r.status && r.status !== "complete" ? ` (${r.status})` : ""}`;
  }
  function currentRecording() { return state.recordings.find((r) => r.id === $("recording").value); }
  function recordingSpan(r) {
    return r && r.start && r.end ? { start: isoSeconds(r.start), end: isoSeconds(r.end) } : null;
  }
  function describeRecording() {
    const r = currentRecording();
    if (!r) { $("recording-description").textContent = ""; return; }
    const span = recordingSpan(r);
    const parts = [r.preset, r.batteries ? `${r.batteries} jars` : null,
      r.readings != null ? `${Number(r.readings).toLocaleString("en")} readings` : null,
      r.interval_s ? `every ${r.interval_s} s` : null, span ? `${timeText(span.start)} → ${timeText(span.end)}` : null,
      r.status];
    $("recording-description").textContent = parts.filter(Boolean).join(" · ");
  }

  function replaySpeed() {
    const value = $("replay-speed").value;
    return value === "max" ? "max" : Number(value);
  }

  const playReplay = action(async () => {
    const r = currentRecording();
    if (!r) throw new Error("recording: no recording to replay yet (a live run or `battsim run` makes one)");
    setView("replay");
    state.replayRecording = r;
    state.replaySpan = recordingSpan(r);
    state.replayEvents = [];
    state.replayStatus = null;
    drawSeekEvents();
    await feeds.replay.open(); // subscribed before it starts, so the first frames (or all, at max) are not missed
    setReplayStatus(await api("POST", "replay/start", { recording: r.id, speed: replaySpeed() }));
    await Promise.all([loadReplayEvents(r), loadReplayAlarms(r, state.replaySpan ? state.replaySpan.start : 0)]);
  });

  const replayCommand = (path, body) => action(async () => {
    setReplayStatus(await api("POST", path, typeof body === "function" ? body() : body));
  });

  const stopReplay = action(async () => {
    try {
      if (state.replayStatus && state.replayStatus.state !== "idle") setReplayStatus(await api("POST", "replay/stop"));
    } finally {
      setView("live");
    }
  });

  // The events on the seek bar, from the recording's events table through the read-only SQL endpoint:
  // one marker per kind per bucket of the span (a year of daily outages stays a few hundred markers).
  async function loadReplayEvents(r) {
    const span = recordingSpan(r);
    if (!span || ["running", "busy"].includes(r.status)) return; // still being written: not queryable yet
    const bucket = Math.max(1, Math.ceil((span.end - span.start) / 400));
    const sql = "SELECT kind, min(timestamp) AS timestamp, count(*) AS n, min(site_id) AS site_id, "
      + "min(string_id) AS string_id, min(battery_id) AS battery_id FROM events WHERE kind <> 'mode_change' "
      + `GROUP BY kind, floor(epoch(timestamp) / ${bucket}) ORDER BY 2 LIMIT 4000`;
    try {
      const result = await api("POST", "query", { recording: r.id, sql });
      state.replayEvents = result.rows.map((e) => ({ ...e, t: isoSeconds(e.timestamp) }));
    } catch (error) {
      toast(`events of ${r.id}: ${error.message}`);
    }
    drawSeekEvents();
  }

  // The alarm list of a replay: the recording's alarm events (a live run records every alarm raised and
  // cleared), those active at the start or seek position first, then the later ones applied as the
  // frames shown pass their time, fetched a page at a time.
  const ALARM_PAGE = 5000;
  const ALARM_COLUMNS = "timestamp, kind, battery_id, string_id, site_id, json_extract_string(detail, '$.rule') AS rule, "
    + "json_extract_string(detail, '$.severity') AS severity, TRY_CAST(json_extract(detail, '$.value') AS DOUBLE) AS value, "
    + "json_extract_string(detail, '$.unit') AS unit, json_extract_string(detail, '$.message') AS message";
  const replayAlarms = { recording: null, queue: [], next: 0, after: null, more: false, loading: false, generation: 0 };

  function alarmFromEvent(row) {
    return { ...row, state: row.kind === "alarm_cleared" ? "cleared" : "raised" };
  }

  async function loadReplayAlarms(r, t) {
    const generation = ++replayAlarms.generation;
    Object.assign(replayAlarms, { recording: null, queue: [], next: 0, after: null, more: false, loading: false });
    clearAlarms();
    if (!r || ["running", "busy"].includes(r.status)) return; // still being written: not queryable yet
    const at = new Date(t * 1000).toISOString();
    const sql = `SELECT * FROM (SELECT ${ALARM_COLUMNS} FROM events WHERE kind IN ('alarm_raised', 'alarm_cleared') `
      + `AND timestamp <= '${at}' QUALIFY row_number() OVER (PARTITION BY battery_id, `
      + "json_extract_string(detail, '$.rule') ORDER BY timestamp DESC) = 1) WHERE kind = 'alarm_raised'";
    try {
      const active = await api("POST", "query", { recording: r.id, sql });
      if (generation !== replayAlarms.generation) return;
      for (const row of active.rows) addAlarm(alarmFromEvent(row), row);
      Object.assign(replayAlarms, { recording: r.id, after: at, more: true });
      await moreReplayAlarms();
    } catch (error) {
      toast(`alarms of ${r.id}: ${error.message}`);
    }
  }

  async function moreReplayAlarms() {
    const generation = replayAlarms.generation;
    if (!replayAlarms.more || replayAlarms.loading || !replayAlarms.recording) return;
    replayAlarms.loading = true;
    try {
      const sql = `SELECT ${ALARM_COLUMNS} FROM events WHERE kind IN ('alarm_raised', 'alarm_cleared') `
        + `AND timestamp > '${replayAlarms.after}' ORDER BY timestamp LIMIT ${ALARM_PAGE}`;
      const result = await api("POST", "query", { recording: replayAlarms.recording, sql });
      if (generation !== replayAlarms.generation) return;
      let rows = result.rows;
      const full = rows.length >= ALARM_PAGE || result.truncated;
      if (full) {
        // The page may end inside a group of changes at one time: keep whole groups only.
        const last = rows[rows.length - 1].timestamp;
        const whole = rows.filter((row) => row.timestamp !== last);
        if (whole.length) rows = whole;
      }
      replayAlarms.queue = rows.map((row) => ({ row, t: isoSeconds(row.timestamp) }));
      replayAlarms.next = 0;
      replayAlarms.more = full;
      if (rows.length) replayAlarms.after = rows[rows.length - 1].timestamp;
    } finally {
      if (generation === replayAlarms.generation) replayAlarms.loading = false;
    }
  }

  // Called once per animation frame in the replay view: the alarm changes up to the time shown.
  function advanceReplayAlarms() {
    const { queue } = replayAlarms;
    while (replayAlarms.next < queue.length && queue[replayAlarms.next].t <= store.simTime) {
      const { row } = queue[replayAlarms.next++];
      addAlarm(alarmFromEvent(row), row);
    }
    if (replayAlarms.next >= queue.length && replayAlarms.more) moreReplayAlarms().catch((e) => toast(e.message));
  }

  function eventColor(kind) {
    const k = String(kind || "");
    for (const [word, color] of Object.entries(EVENT_COLORS)) if (k.includes(word)) return color;
    return EVENT_COLORS.other;
  }

  function drawSeekEvents() {
    const canvas = $("seek-events"), span = state.replaySpan;
    const width = canvas.clientWidth || 300, ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(14 * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, 14);
    ctx.fillStyle = "#1f2935";
    ctx.fillRect(0, 5, width, 4);
    $("seek-start").textContent = span ? timeText(span.start) : "";
    $("seek-end").textContent = span ? timeText(span.end) : "";
    $("seek-bar").disabled = !span;
    $("seek").dataset.events = String(state.replayEvents.length);
    if (!span || span.end <= span.start) return;
    for (const e of state.replayEvents) {
      const x = Math.round(((e.t - span.start) / (span.end - span.start)) * (width - 2));
      ctx.fillStyle = eventColor(e.kind);
      // Causes (outages, HVAC, scenarios) full height; alarms, which are many, as short ticks.
      if (String(e.kind).startsWith("alarm")) ctx.fillRect(x, 9, 2, 5);
      else ctx.fillRect(x, 0, 2, 14);
    }
  }

  function seekEventHint(event) {
    const span = state.replaySpan;
    if (!span || !state.replayEvents.length) return;
    const rect = $("seek-events").getBoundingClientRect();
    const t = span.start + ((event.clientX - rect.left) / rect.width) * (span.end - span.start);
    let best = null;
    for (const e of state.replayEvents) if (!best || Math.abs(e.t - t) < Math.abs(best.t - t)) best = e;
    const where = [best.battery_id || best.string_id || best.site_id].filter(Boolean).join(" ");
    $("seek-event-hint").textContent = `${timeText(best.t)} ${best.kind} ${where}${best.n > 1 ? ` (+${best.n - 1} more nearby)` : ""}`;
  }

  function setReplayStatus(status) {
    if (!status || typeof status !== "object") return;
    state.replayStatus = status; // each is a whole snapshot
    const s = state.replayStatus;
    if (!state.replaySpan && s.from && s.to) {
      state.replaySpan = { start: isoSeconds(s.from), end: isoSeconds(s.to) };
      drawSeekEvents();
    }
    const rows = [
      ["State", s.state ?? "–"], ["Recording", s.recording ?? "–"],
      ["Position", s.position ? timeText(isoSeconds(s.position)) : "–"],
      ["Speed", s.speed != null ? `${s.speed}${s.speed === "max" ? "" : "×"}` : "–"],
      ["Achieved", s.achieved_speed != null ? `${fmt(s.achieved_speed, 1)}×` : "–"],
      ["Frames", s.frames != null ? `${s.frames} (${Number(s.readings || 0).toLocaleString("en")} readings)` : "–"],
    ];
    $("replay-status").innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join("");
    const playing = ["playing", "paused"].includes(s.state);
    $("replay-pause").disabled = s.state !== "playing";
    $("replay-resume").disabled = s.state !== "paused";
    $("replay-stop").disabled = !playing && s.state !== "ended";
    if (s.position) setSeekPosition(isoSeconds(s.position));
  }

  function setSeekPosition(t) {
    const span = state.replaySpan;
    if (!span || state.seeking || span.end <= span.start) return;
    $("seek-bar").value = String(Math.round(((t - span.start) / (span.end - span.start)) * 1000));
    $("seek-now").textContent = timeText(t);
  }

  function seekTarget() {
    const span = state.replaySpan;
    return span.start + (Number($("seek-bar").value) / 1000) * (span.end - span.start);
  }

  const seek = action(async () => {
    state.seeking = false;
    const target = seekTarget();
    store.clearHistory();
    setReplayStatus(await api("POST", "replay/seek", { time: new Date(target * 1000).toISOString() }));
    await loadReplayAlarms(state.replayRecording, target);
  });

  async function refreshReplayStatus() {
    const status = await api("GET", "replay/status");
    setReplayStatus(status);
    return status;
  }

  // ------------------------------------------------------------------------------ wiring
  function wire() {
    $("start-form").addEventListener("submit", startSimulation);
    $("stop").addEventListener("click", simulationCommand("simulation/stop"));
    $("pause").addEventListener("click", simulationCommand("simulation/pause"));
    $("resume").addEventListener("click", simulationCommand("simulation/resume"));
    $("speed-apply").addEventListener("click", simulationCommand("simulation/speed", () => ({ speed: Number($("speed").value) })));
    $("preset").addEventListener("change", describePreset);
    $("scenario").addEventListener("change", renderScenarioParams);
    $("scenario-form").addEventListener("submit", applyScenario);
    $("clear-scenario").addEventListener("click", clearScenario(false));
    $("clear-all").addEventListener("click", clearScenario(true));
    $("target-selected").addEventListener("click", () => {
      if (state.selected < 0) return;
      const input = $("target-batteries");
      const ids = new Set(input.value.split(/[\s,]+/).filter(Boolean));
      ids.add(store.ids[state.selected]);
      input.value = [...ids].join(", ");
    });
    $("timeline-form").addEventListener("submit", loadTimeline);
    $("timeline-name").addEventListener("change", () => {
      $("timeline-text").value = state.shippedTimelines[$("timeline-name").value] || "";
    });
    $("timeline-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (file) {
        $("timeline-text").value = await file.text();
        $("timeline-name").value = "";
      }
    });
    $("replay-form").addEventListener("submit", playReplay);
    $("replay-pause").addEventListener("click", replayCommand("replay/pause"));
    $("replay-resume").addEventListener("click", replayCommand("replay/resume"));
    $("replay-stop").addEventListener("click", stopReplay);
    $("replay-speed").addEventListener("change", () => {
      if (state.view === "replay") replayCommand("replay/speed", () => ({ speed: replaySpeed() }))();
    });
    $("recording").addEventListener("change", describeRecording);
    $("recordings-refresh").addEventListener("click", action(loadRecordings));
    $("seek-bar").addEventListener("input", () => {
      state.seeking = true;
      $("seek-now").textContent = `→ ${timeText(seekTarget())}`;
    });
    $("seek-bar").addEventListener("change", seek);
    // Released where it was (no change event): follow the replay again, after any change has been handled.
    $("seek-bar").addEventListener("pointerup", () => setTimeout(() => { state.seeking = false; }, 0));
    $("seek-events").addEventListener("mousemove", seekEventHint);
    $("chart-site").addEventListener("change", () => {
      state.chartSite = $("chart-site").value;
      rebuildCharts();
      dirty.data = true;
    });
    $("alarm-rows").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-battery]");
      if (row && store.index.has(row.dataset.battery)) select(store.index.get(row.dataset.battery));
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        for (const chart of Object.values(charts)) chart.plot.setSize({ width: chartWidth(chart.el), height: chart.plot.height });
        for (const map of heatMaps) map.resize();
        drawSeekEvents();
        dirty.data = true;
      }, 150);
    });
  }

  // The state of the page, for tests and for a curious developer's console.
  window.__battsim = {
    get view() { return state.view; },
    get jars() { return store.n; },
    get strings() { return store.strings.length; },
    get sites() { return store.sites.slice(); },
    get framesParsed() { return store.framesParsed; },
    get historyFrames() { return state.historyFrames || 0; }, // frames loaded from GET /history on load
    // The deviation chart: its string and each jar's latest deviation from the string mean, mV.
    get deviation() {
      const chart = charts.deviation;
      return chart ? { string: chart.el.dataset.string, last: deviationSeries(chart.jars).map((a) => a[a.length - 1]) } : null;
    },
    get readingsParsed() { return store.readingsParsed; },
    get points() { return store.len; },
    times: () => Array.from(store.t.subarray(0, store.len)),
    get lastSeq() { return store.lastSeq; },
    get simTime() { return store.simTime; },
    get modeCounts() { return { ...store.modeCounts }; },
    get minStringCurrent() { return store.minStringCurrent; },
    get selected() { return store.ids[state.selected] ?? null; },
    get activeAlarms() { return [...alarms.active.values()].map((a) => ({ rule: a.rule, battery_id: a.battery_id, severity: a.severity })); },
    get alarmsRaised() { return alarms.raised; },
    get draws() { return state.draws; },
    get animationFrames() { return state.animationFrames; },
    get parseMs() { return state.parseMs; },
    get drawMs() { return state.drawMs; },
    get chartMs() { return state.chartMs; },
    get heatMs() { return state.heatMs; },
    get errors() { return state.errors.slice(); },
    get simStatus() { return state.simStatus; },
    get replayStatus() { return state.replayStatus; },
    get replaySpan() { return state.replaySpan; },
    get replayEvents() { return state.replayEvents.length; },
    feeds: () => Object.fromEntries(Object.values(feeds).map((f) => [f.name, {
      state: f.state, received: f.received, decimated: f.decimated, serverDropped: f.serverDropped, messages: f.messages }])),
    siteModes: () => {
      const out = {};
      for (let j = 0; j < store.n; j++) {
        const site = store.sites[store.stringSite[store.jarString[j]]], mode = MODES[store.mode[j]] ?? "unknown";
        out[site] = out[site] || {};
        out[site][mode] = (out[site][mode] || 0) + 1;
      }
      return out;
    },
    select: (batteryId) => { if (store.index.has(batteryId)) select(store.index.get(batteryId)); },
  };

  async function boot() {
    wire();
    feeds.live.open().catch(() => {}); // it reconnects by itself; the pill shows the state
    requestAnimationFrame(animate);
    await Promise.all([loadPresets(), loadScenarios(), loadTimelines(), refreshSimStatus()].map((p) => p.catch((e) => toast(e.message))));
    await loadLiveHistory().catch((e) => toast(e.message));
    await loadRecordings().catch((e) => toast(e.message));
    const replay = await refreshReplayStatus().catch((e) => toast(e.message));
    // A replay already running (started by another page or by curl): show it.
    if (replay && ["playing", "following", "paused"].includes(replay.state)) {
      const r = state.recordings.find((x) => x.id === replay.recording);
      if (r) $("recording").value = r.id;
      setView("replay");
      state.replayRecording = r;
      state.replaySpan = recordingSpan(r);
      feeds.replay.open().catch(() => {});
      if (r) {
        loadReplayEvents(r);
        loadReplayAlarms(r, isoSeconds(replay.position));
      }
    }
    // Status frames arrive on every change; this poll only refreshes the running counters.
    setInterval(() => { refreshSimStatus().catch(() => {}); if (state.view === "replay") refreshReplayStatus().catch(() => {}); }, 2000);
  }

  boot();
})();
