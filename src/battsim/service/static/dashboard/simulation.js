/* The Simulation panel: start, stop, pause and speed of the live run, its status, the recent history
 * loaded on opening the page, and the shipped timelines a run can start with. */
import { addAlarm, clearAlarms } from "./alarms.js";
import { action, api, toast } from "./api.js";
import { entries, isoSeconds, timeText } from "./format.js";
import { definitions, html, render } from "./html.js";
import { $, dirty, state } from "./page.js";
import { HISTORY, store } from "./store.js";
import { setView } from "./view.js";

// On load, a running simulation's last hour comes from GET /api/v1/history (thinned to HISTORY points).
const HISTORY_WINDOW = "1h";

export function setSimStatus(status) {
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
  render($("sim-status"), definitions(rows));
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

export function renderActiveScenarios(active) {
  render($("active-scenarios"), html`${active.map((a) => {
    const targets = Object.entries(a.targets || {}).map(([kind, ids]) => `${kind}: ${ids.join(", ")}`).join("; ");
    const params = a.params && Object.keys(a.params).length ? ` ${JSON.stringify(a.params)}` : "";
    const until = a.until ? `, until ${timeText(isoSeconds(a.until))}` : "";
    return html`<li><b>${a.name}</b> on ${targets || "the fleet"} (${a.jars} jars)${params}
      <br><span class="hint">since ${timeText(isoSeconds(a.since))}${until} · ${a.source}</span></li>`;
  })}`);
}

export async function refreshSimStatus() { setSimStatus(await api("GET", "simulation/status")); }

// The running simulation's settings in the form, so that Start or Set does not silently change them.
function fillForm(status) {
  if (status.preset && state.presets.some((p) => p.name === status.preset)) { $("preset").value = status.preset; describePreset(); }
  if (status.seed != null) $("seed").value = status.seed;
  if (status.interval_seconds) $("interval").value = status.interval_seconds;
  if (status.speed != null) $("speed").value = status.speed;
}

// On load: the running simulation's recent history (from its recording) and the alarms active now.
export async function loadLiveHistory() {
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

export async function loadPresets() {
  const presets = await api("GET", "presets");
  state.presets = Array.isArray(presets) ? presets : Object.entries(presets).map(([name, description]) => ({ name, description }));
  const select = $("preset");
  render(select, html`${state.presets.map((p) =>
    html`<option value="${p.name}">${p.name}${p.batteries ? ` (${p.batteries} jars)` : ""}</option>`)}`);
  if (state.presets.some((p) => p.name === "thailand-9x24")) select.value = "thailand-9x24";
  describePreset();
}
export function describePreset() {
  const preset = state.presets.find((p) => p.name === $("preset").value);
  $("preset-description").textContent = preset ? preset.description || "" : "";
}

export async function loadTimelines() {
  const data = await api("GET", "timeline");
  state.shippedTimelines = data.shipped || {};
  const names = Object.keys(state.shippedTimelines);
  const options = names.map((n) => html`<option value="${n}">${n}</option>`);
  render($("start-timeline"), html`<option value="">none</option>${options}`);
  render($("timeline-name"), html`<option value="">(paste or open a file)</option>${options}`);
  $("timeline-current").textContent = (data.installed || []).map((t) =>
    `${t.source}: ${entries((t.events || []).length)}`).join("\n");
}

// The scenario builder (builder.js) starts a simulation with its timeline's TOML as Start would.
let builderTimeline = null;
export const startSimulation = action(async () => {
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

export const simulationCommand = (path, body) => action(async () => {
  setSimStatus(await api("POST", path, typeof body === "function" ? body() : body));
});
