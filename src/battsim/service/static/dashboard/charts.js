/* The charts (uPlot, loaded as a classic script before the modules): string voltage, current and
 * temperature over time, the selected jar's detail, and its string's jars as deviations from their mean. */
import { fmt, palette } from "./format.js";
import { $, state } from "./page.js";
import { store } from "./store.js";

const uPlotTz = (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
export const charts = {};

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

export function rebuildCharts() {
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

export function deviationSeries(jars) {
  const n = store.n, out = jars.map(() => new Array(store.len));
  for (let k = 0; k < store.len; k++) {
    let sum = 0, count = 0;
    for (const j of jars) { const v = store.hv[k * n + j]; if (v === v) { sum += v; count++; } }
    const mean = count ? sum / count : NaN;
    jars.forEach((j, i) => { const v = (store.hv[k * n + j] - mean) * 1000; out[i][k] = v === v ? v : null; });
  }
  return out;
}

export function drawCharts() {
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

export function resizeCharts() {
  for (const chart of Object.values(charts)) chart.plot.setSize({ width: chartWidth(chart.el), height: chart.plot.height });
}
