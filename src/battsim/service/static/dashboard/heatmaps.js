/* The heat maps: one cell per jar (a row per string, a column per position), coloured by temperature,
 * state of health or mode, drawn on a canvas; hover names the jar, a click selects it. */
import { select } from "./detail.js";
import { fmt } from "./format.js";
import { html, render } from "./html.js";
import { $, MODE_COLORS, MODES, state } from "./page.js";
import { store } from "./store.js";

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
    render(this.el.querySelector(".scale"), scale);
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
export const heatMaps = [
  new HeatMap("heat-temperature", {
    value: (j) => store.temp[j], color: lookup(TEMP_RAMP, TEMP_RANGE),
    scale: html`<span>${TEMP_RANGE[0]}</span><span class="bar" style="background:${gradient(TEMP_RAMP)}"></span><span>${TEMP_RANGE[1]} °C</span>`,
    describe: (j) => `temperature ${fmt(store.temp[j], 2)} °C (room ${fmt(store.amb[j], 1)} °C)`,
  }),
  new HeatMap("heat-soh", {
    value: (j) => store.soh[j], color: lookup(SOH_RAMP, SOH_RANGE),
    scale: html`<span>${SOH_RANGE[0]}</span><span class="bar" style="background:${gradient(SOH_RAMP)}"></span><span>${SOH_RANGE[1]} %</span>`,
    describe: (j) => `state of health ${fmt(store.soh[j], 2)} %`,
  }),
  new HeatMap("heat-mode", {
    value: (j) => store.mode[j], color: (m) => MODE_COLORS[MODES[m] ?? "unknown"],
    scale: html`${MODES.map((m) => html`<span><i class="swatch" style="background:${MODE_COLORS[m]}"></i>${m}</span> `)}`,
    describe: (j) => `mode ${MODES[store.mode[j]] ?? "?"}`,
  }),
];
