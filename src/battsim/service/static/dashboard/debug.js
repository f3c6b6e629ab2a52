/* The state of the page as window.__battsim, for tests and for a curious developer's console. */
import { alarms } from "./alarms.js";
import { charts, deviationSeries } from "./charts.js";
import { feeds } from "./feeds.js";
import { MODES, state } from "./page.js";
import { select } from "./detail.js";
import { store } from "./store.js";

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
