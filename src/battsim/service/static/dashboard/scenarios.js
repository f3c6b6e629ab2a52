/* The Scenarios panel: a scenario from the catalogue with its parameters, on the sites, strings or jars
 * picked, for a duration; clearing them; and a timeline installed into the running simulation. */
import { action, api, toast, toastResult } from "./api.js";
import { entries } from "./format.js";
import { html, render } from "./html.js";
import { $, state } from "./page.js";
import { loadTimelines, refreshSimStatus, renderActiveScenarios } from "./simulation.js";
import { store } from "./store.js";

export async function loadScenarios() {
  state.scenarios = await api("GET", "scenarios");
  render($("scenario"), html`${state.scenarios.map((s) => html`<option value="${s.scenario}">${s.name || s.scenario}</option>`)}`);
  if (state.scenarios.some((s) => s.scenario === "power_outage")) $("scenario").value = "power_outage";
  renderScenarioParams();
}

// One input per parameter, from the scenario's JSON schema (type, bounds, enum, default, description).
export function renderScenarioParams() {
  const spec = state.scenarios.find((s) => s.scenario === $("scenario").value);
  $("scenario-description").textContent = spec ? `${spec.description}${spec.scope ? ` (acts per ${spec.scope})` : ""}` : "";
  const parameters = (spec && spec.parameters) || {};
  render($("scenario-params"), html`${Object.entries(parameters).map(([name, schema]) => {
    const label = schema.title || name;
    const hint = schema.description ? html`<p class="hint">${schema.description}</p>` : "";
    if (schema.enum) {
      const options = schema.enum.map((v) => html`<option ${v === schema.default ? "selected" : ""}>${v}</option>`);
      return html`<label>${label}<select data-param="${name}" data-kind="string">${options}</select></label>${hint}`;
    }
    const numeric = schema.type === "number" || schema.type === "integer";
    const bounds = ["minimum", "maximum"].map((b) => (schema[b] != null ? html` ${b.slice(0, 3)}="${schema[b]}"` : ""));
    return html`<label>${label}<input data-param="${name}" data-kind="${numeric ? "number" : "string"}"
      type="${numeric ? "number" : "text"}" step="any"${bounds} value="${schema.default ?? ""}"></label>${hint}`;
  })}`);
}

function scenarioParams() {
  const params = {};
  for (const input of $("scenario-params").querySelectorAll("[data-param]")) {
    if (input.value === "") continue;
    params[input.dataset.param] = input.dataset.kind === "number" ? Number(input.value) : input.value;
  }
  return params;
}

function selectedOptions(id) { return [...$(id).selectedOptions].map((o) => o.value); }

function targets() {
  const body = {};
  const sites = selectedOptions("target-sites"), strings = selectedOptions("target-strings");
  const batteries = $("target-batteries").value.split(/[\s,]+/).filter(Boolean);
  if (sites.length) body.site_ids = sites;
  if (strings.length) body.string_ids = strings;
  if (batteries.length) body.battery_ids = batteries;
  return body;
}

// Seconds, or a duration ("30min", "2h", "1h30m", "PT2H"): the server reads it with the grammar every
// edge shares (battsim/timeparse.py) and names what is allowed when it is not one.
function duration(text) {
  const t = text.trim();
  return /^\d+(\.\d+)?$/.test(t) ? Number(t) : t;
}

export function fillTargetPickers() {
  const keep = (id) => new Set(selectedOptions(id));
  const sites = keep("target-sites"), strings = keep("target-strings");
  const options = (ids, kept) => html`${ids.map((id) => html`<option ${kept.has(id) ? "selected" : ""}>${id}</option>`)}`;
  render($("target-sites"), options(store.sites, sites));
  render($("target-strings"), options(store.strings, strings));
  const chartSite = $("chart-site");
  render(chartSite, html`<option value="">all sites</option>${options(store.sites, new Set())}`);
  if (!store.sites.includes(state.chartSite)) state.chartSite = "";
  chartSite.value = state.chartSite;
}

export const applyScenario = action(async () => {
  const body = { scenario: $("scenario").value, ...targets() };
  const params = scenarioParams();
  if (Object.keys(params).length) body.params = params;
  if ($("scenario-duration").value.trim()) body.duration_s = duration($("scenario-duration").value);
  const result = await api("POST", "scenarios/apply", body);
  toastResult(result);
  renderActiveScenarios(result.active_scenarios || []);
});

export const clearScenario = (everything) => action(async () => {
  const result = await api("POST", "scenarios/clear", everything ? undefined : targets());
  toastResult(result);
  renderActiveScenarios(result.active_scenarios || []);
});

export const loadTimeline = action(async () => {
  // A shipped timeline left as shipped goes by its name (so it is recorded as that); edited, as TOML.
  const name = $("timeline-name").value, text = $("timeline-text").value;
  const timeline = name && (!text.trim() || text === state.shippedTimelines[name]) ? name : text.trim();
  if (!timeline) throw new Error("timeline: choose a shipped timeline, paste TOML or open a file");
  const result = await api("POST", "timeline", { timeline });
  toast(`Timeline ${result.source} installed: ${entries((result.events || []).length)}`, "info");
  await loadTimelines();
  await refreshSimStatus();
});
