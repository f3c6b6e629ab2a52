/* The alarm list: the alarms active now and the latest cleared ones, for the feed being viewed. */
import { fmt, isoSeconds, timeText } from "./format.js";
import { html, render } from "./html.js";
import { $, dirty } from "./page.js";

const ALARM_LOG = 300; // cleared alarms remembered

export const alarms = { active: new Map(), log: [], raised: 0, cleared: 0 };

export function clearAlarms() {
  alarms.active.clear();
  alarms.log = [];
  alarms.raised = alarms.cleared = 0;
  dirty.alarms = true;
}

export function addAlarm(alert, frame) {
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

export function renderAlarms() {
  const severityRank = { critical: 0, warning: 1 };
  const active = [...alarms.active.values()].sort(
    (a, b) => (severityRank[a.severity] ?? 2) - (severityRank[b.severity] ?? 2) || b.time - a.time);
  const rows = active.slice(0, 200).concat(alarms.log.slice(0, Math.max(0, 200 - active.length)));
  render($("alarm-rows"), html`${rows.map((a) => html`
    <tr class="${a.state}" data-battery="${a.battery_id}" title="${a.message}">
      <td class="mono">${timeText(a.time)}</td>
      <td class="sev-${a.severity}">${a.severity}</td>
      <td class="mono">${a.battery_id}</td>
      <td>${a.rule}</td>
      <td>${a.value == null ? "–" : `${fmt(a.value, 2)} ${a.unit}`}</td>
      <td>${a.state}</td></tr>`)}`);
  const badge = $("alarm-active-count");
  badge.textContent = `${active.length} active · ${alarms.raised} raised · ${alarms.cleared} cleared`;
  badge.classList.toggle("hot", active.length > 0);
  $("alarms").dataset.active = String(active.length);
}
