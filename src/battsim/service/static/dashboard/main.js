/* battsim dashboard: controls for the live simulation and replays, live charts, heat maps, alarms.
 *
 * The page's modules, each one part of it: page.js (shared state), api.js (requests, the token, messages),
 * html.js (markup that escapes by construction), store.js (the data), feeds.js (the WebSockets),
 * frame.js (the frame loop), charts.js, heatmaps.js, detail.js, alarms.js, simulation.js, scenarios.js,
 * replay.js (the panels), view.js (live or replay), debug.js (window.__battsim); this one wires them.
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
import { addAlarm } from "./alarms.js";
import { action, toast } from "./api.js";
import { rebuildCharts, resizeCharts } from "./charts.js";
import "./debug.js";
import { select } from "./detail.js";
import { feeds } from "./feeds.js";
import { isoSeconds, timeText } from "./format.js";
import { animate } from "./frame.js";
import { heatMaps } from "./heatmaps.js";
import { $, dirty, state } from "./page.js";
import {
  describeRecording, drawSeekEvents, loadRecordings, loadReplayAlarms, loadReplayEvents, playReplay, recordingSpan,
  refreshReplayStatus, replayCommand, replaySpeed, seek, seekEventHint, seekTarget, setReplayStatus, stopReplay,
} from "./replay.js";
import { applyScenario, clearScenario, loadScenarios, loadTimeline, renderScenarioParams } from "./scenarios.js";
import {
  describePreset, loadLiveHistory, loadPresets, loadTimelines, refreshSimStatus, setSimStatus, simulationCommand,
  startSimulation,
} from "./simulation.js";
import { store } from "./store.js";
import { setView } from "./view.js";

// Every message of a feed but telemetry (which feeds.js queues for the frame loop).
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
      resizeCharts();
      for (const map of heatMaps) map.resize();
      drawSeekEvents();
      dirty.data = true;
    }, 150);
  });
}

async function boot() {
  wire();
  for (const feed of Object.values(feeds)) feed.handle = handleMessage;
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
