/* What the page shows, for the feed being viewed (reset when the view or the run changes). Jars are
 * indexed in the order of the first frame (the server sends fleet order: site, string, position),
 * so a heat-map row is a string and a column a jar's position in it. Histories are bounded: when full,
 * every other point is dropped, so memory stays flat however long a session runs. */
import { isoSeconds } from "./format.js";
import { MODES, dirty } from "./page.js";

export const HISTORY = 600; // points kept per series (about a chart's width in pixels)

export class Store {
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

export const store = new Store();
