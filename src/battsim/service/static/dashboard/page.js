/* What every part of the dashboard shares: the page's state, what needs redrawing, the element lookup. */

// A jar's charging modes, in the order the mode heat map and its legend use.
export const MODES = ["float", "boost", "equalize", "discharge", "disconnected"];
export const MODE_COLORS = { float: "#3ecf8e", boost: "#4fa3ff", equalize: "#b084f5", discharge: "#ff8f3d",
  disconnected: "#ff5c5c", unknown: "#555" };

export const $ = (id) => document.getElementById(id);
export const state = {
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
// What changed since the last frame was drawn (frame.js redraws only that).
export const dirty = { data: false, alarms: false, layout: false };
