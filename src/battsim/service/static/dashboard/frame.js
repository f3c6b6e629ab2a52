/* The frame loop: once per animation frame, parse what the viewed feed queued, then redraw what changed
 * (charts, heat maps, the detail, the strip of counters), at most every MIN_REDRAW_MS and never so often
 * that drawing takes more than about a fifth of the main thread (a big fleet's draw takes longer). */
import { renderAlarms } from "./alarms.js";
import { drawCharts, rebuildCharts } from "./charts.js";
import { renderDetail, select } from "./detail.js";
import { feeds } from "./feeds.js";
import { timeText } from "./format.js";
import { heatMaps } from "./heatmaps.js";
import { $, dirty, state } from "./page.js";
import { advanceReplayAlarms, setSeekPosition } from "./replay.js";
import { fillTargetPickers } from "./scenarios.js";
import { store } from "./store.js";

const MIN_REDRAW_MS = 100; // charts and heat maps redraw at most this often

let lastDraw = 0, lastDrawCost = 0;
export function animate(now) {
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
