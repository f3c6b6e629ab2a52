/* The Replay panel: recordings to choose from, play, pause, speed and seek, the seek bar's events, and the
 * replay's alarm list, which follows the frames shown. */
import { addAlarm, clearAlarms } from "./alarms.js";
import { action, api, toast } from "./api.js";
import { feeds } from "./feeds.js";
import { fmt, isoSeconds, timeText } from "./format.js";
import { definitions, html, render } from "./html.js";
import { $, state } from "./page.js";
import { store } from "./store.js";
import { onLeavingReplay, setView } from "./view.js";

const EVENT_COLORS = { outage: "#ff5c5c", disconnect: "#ff5c5c", hvac: "#ff8f3d", scenario: "#4fa3ff",
  alarm: "#f0b429", other: "#8696a8" };

// Recordings are listed by GET /recordings (id = the file name without .duckdb); a replay streams on
// /ws/replay as telemetry frames plus playback_state frames after every command and change of state.
export async function loadRecordings() {
  state.recordings = await api("GET", "recordings");
  const select = $("recording"), previous = select.value;
  const options = state.recordings.map((r) => html`<option value="${r.id}">${recordingLabel(r)}</option>`);
  render(select, options.length ? html`${options}` : html`<option value="">no recordings yet</option>`);
  if (state.recordings.some((r) => r.id === previous)) select.value = previous;
  describeRecording();
}
function recordingLabel(r) {
  return `${r.file || r.id}${r.status && r.status !== "complete" ? ` (${r.status})` : ""}`;
}
function currentRecording() { return state.recordings.find((r) => r.id === $("recording").value); }
export function recordingSpan(r) {
  return r && r.start && r.end ? { start: isoSeconds(r.start), end: isoSeconds(r.end) } : null;
}
export function describeRecording() {
  const r = currentRecording();
  if (!r) { $("recording-description").textContent = ""; return; }
  const span = recordingSpan(r);
  const parts = [r.preset, r.batteries ? `${r.batteries} jars` : null,
    r.readings != null ? `${Number(r.readings).toLocaleString("en")} readings` : null,
    r.interval_s ? `every ${r.interval_s} s` : null, span ? `${timeText(span.start)} → ${timeText(span.end)}` : null,
    r.status];
  $("recording-description").textContent = parts.filter(Boolean).join(" · ");
}

export function replaySpeed() {
  const value = $("replay-speed").value;
  return value === "max" ? "max" : Number(value);
}

export const playReplay = action(async () => {
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

export const replayCommand = (path, body) => action(async () => {
  setReplayStatus(await api("POST", path, typeof body === "function" ? body() : body));
});

export const stopReplay = action(async () => {
  try {
    if (state.replayStatus && state.replayStatus.state !== "idle") setReplayStatus(await api("POST", "replay/stop"));
  } finally {
    setView("live");
  }
});

// The events on the seek bar, from the recording's events table through the read-only SQL endpoint:
// one marker per kind per bucket of the span (a year of daily outages stays a few hundred markers).
export async function loadReplayEvents(r) {
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
onLeavingReplay(() => {
  replayAlarms.generation++;
  replayAlarms.queue = [];
  replayAlarms.more = false;
});

function alarmFromEvent(row) {
  return { ...row, state: row.kind === "alarm_cleared" ? "cleared" : "raised" };
}

export async function loadReplayAlarms(r, t) {
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
export function advanceReplayAlarms() {
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

export function drawSeekEvents() {
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

export function seekEventHint(event) {
  const span = state.replaySpan;
  if (!span || !state.replayEvents.length) return;
  const rect = $("seek-events").getBoundingClientRect();
  const t = span.start + ((event.clientX - rect.left) / rect.width) * (span.end - span.start);
  let best = null;
  for (const e of state.replayEvents) if (!best || Math.abs(e.t - t) < Math.abs(best.t - t)) best = e;
  const where = [best.battery_id || best.string_id || best.site_id].filter(Boolean).join(" ");
  $("seek-event-hint").textContent = `${timeText(best.t)} ${best.kind} ${where}${best.n > 1 ? ` (+${best.n - 1} more nearby)` : ""}`;
}

export function setReplayStatus(status) {
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
  render($("replay-status"), definitions(rows));
  const playing = ["playing", "paused"].includes(s.state);
  $("replay-pause").disabled = s.state !== "playing";
  $("replay-resume").disabled = s.state !== "paused";
  $("replay-stop").disabled = !playing && s.state !== "ended";
  if (s.position) setSeekPosition(isoSeconds(s.position));
}

export function setSeekPosition(t) {
  const span = state.replaySpan;
  if (!span || state.seeking || span.end <= span.start) return;
  $("seek-bar").value = String(Math.round(((t - span.start) / (span.end - span.start)) * 1000));
  $("seek-now").textContent = timeText(t);
}

export function seekTarget() {
  const span = state.replaySpan;
  return span.start + (Number($("seek-bar").value) / 1000) * (span.end - span.start);
}

export const seek = action(async () => {
  state.seeking = false;
  const target = seekTarget();
  store.clearHistory();
  setReplayStatus(await api("POST", "replay/seek", { time: new Date(target * 1000).toISOString() }));
  await loadReplayAlarms(state.replayRecording, target);
});

export async function refreshReplayStatus() {
  const status = await api("GET", "replay/status");
  setReplayStatus(status);
  return status;
}
