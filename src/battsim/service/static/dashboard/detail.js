/* The selected jar: its id, and every latest value and active alarm of it as a list. */
import { alarms } from "./alarms.js";
import { fmt, isoSeconds, timeText } from "./format.js";
import { definitions, render } from "./html.js";
import { $, MODES, dirty, state } from "./page.js";
import { store } from "./store.js";

export function select(j) {
  state.selected = j;
  $("detail-id").textContent = store.ids[j] ?? "";
  dirty.data = true;
}

export function renderDetail() {
  const j = state.selected;
  if (j < 0 || j >= store.n) { render($("detail-fields"), definitions([])); return; }
  const active = [...alarms.active.values()].filter((a) => a.battery_id === store.ids[j]).map((a) => a.rule);
  const fields = [
    ["Site", store.sites[store.stringSite[store.jarString[j]]]], ["String", store.strings[store.jarString[j]]],
    ["Mode", MODES[store.mode[j]] ?? "?"], ["Reading", timeText(isoSeconds(store.time[j]))],
    ["Voltage", `${fmt(store.v[j], 3)} V`], ["Current", `${fmt(store.i[j], 3)} A`],
    ["Temperature", `${fmt(store.temp[j], 2)} °C`], ["Room", `${fmt(store.amb[j], 2)} °C`],
    ["Resistance", `${fmt(store.r[j], 3)} mΩ`], ["SOH", `${fmt(store.soh[j], 2)} %`],
    ["SOC", `${fmt(store.soc[j], 2)} %`], ["Alarms", active.length ? active.join(", ") : "none"],
  ];
  render($("detail-fields"), definitions(fields));
}
