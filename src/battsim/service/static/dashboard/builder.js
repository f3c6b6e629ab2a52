/* battsim dashboard: the scenario builder (issue 24).
 *
 * Composes a timeline as a form (POST /api/v1/timeline/preview's "form"): scenario and parameters from
 * GET /api/v1/scenarios, targets from the fleet tree (GET /api/v1/timeline/targets), when, duration.
 * The server does all the rest: it checks the form and answers with the next occurrences (the page
 * has no recurrence logic), turns the form into timeline TOML and TOML back into a form (the page
 * has no TOML writer), and names the offending field of anything wrong, whose message is shown next
 * to that field. The page builds its DOM with createElement and textContent only.
 *
 * Exposed for tests as window.__battsimBuilder.
 */
import { ServerError, api } from "./api.js";
import { $ } from "./page.js";

const WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
const PREVIEW_COUNT = 10;

const state = {
  scenarios: [],
  tree: null, // {fleet, sites: [{site_id, name, timezone, strings: [{string_id, batteries}]}]}
  form: { name: null, description: "", timezone: "Asia/Bangkok", events: [] },
  current: 0, // the event being edited
  preview: null, // the last answer of POST timeline/preview
  errors: [], // [{field, message}] shown now
};

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value == null || value === false) continue;
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// ------------------------------------------------------------------------------ the event being edited
function blankEvent() {
  return { name: null, scenario: "power_outage", params: {}, targets: { sites: [], strings: [], batteries: [] },
    when: { kind: "recurring", every: "daily", time: "14:00", days: [], day_of_month: null, starting: null, until: null },
    duration: "2h" };
}
const event = () => state.form.events[state.current];

// The inputs → the current event (the form holds only what the user set; the server fills defaults).
function readInputs() {
  const e = event();
  e.name = $("b-name").value.trim() || null;
  e.scenario = $("b-scenario").value;
  e.params = {};
  for (const input of $("b-params").querySelectorAll("[data-param]")) {
    if (input.value === "") continue;
    e.params[input.dataset.param] = input.dataset.kind === "number" ? Number(input.value) : input.value;
  }
  e.duration = $("b-duration").value.trim() || null;
  const kind = $("b-when-kind").value;
  if (kind === "once") e.when = { kind, at: $("b-once-at").value.trim() };
  else if (kind === "random") e.when = { kind, rate_per_year: Number($("b-rate").value) };
  else {
    const every = $("b-every").value;
    e.when = { kind, every, time: $("b-time").value, starting: $("b-starting").value || null, until: $("b-until").value || null,
      days: every === "weekly" ? WEEKDAYS.filter((d) => $(`b-day-${d}`).checked) : [],
      day_of_month: every === "monthly" && $("b-day-of-month").value ? Number($("b-day-of-month").value) : null };
  }
  state.form.timezone = $("b-timezone").value.trim();
  state.form.name = $("b-timeline-name").value.trim() || null;
}

// The current event → the inputs.
function writeInputs() {
  const e = event();
  $("b-name").value = e.name || "";
  $("b-scenario").value = e.scenario;
  renderParams(e.params);
  $("b-duration").value = e.duration || "";
  $("b-when-kind").value = e.when.kind;
  $("b-once-at").value = e.when.kind === "once" ? e.when.at : "";
  $("b-rate").value = e.when.kind === "random" ? e.when.rate_per_year : "";
  if (e.when.kind === "recurring") {
    $("b-every").value = e.when.every;
    $("b-time").value = e.when.time;
    $("b-starting").value = e.when.starting || "";
    $("b-until").value = e.when.until || "";
    for (const d of WEEKDAYS) $(`b-day-${d}`).checked = (e.when.days || []).includes(d);
    $("b-day-of-month").value = e.when.day_of_month ?? "";
  }
  $("b-timezone").value = state.form.timezone;
  $("b-timeline-name").value = state.form.name || "";
  showWhen();
  renderTargets();
  renderEventList();
}

function showWhen() {
  const kind = $("b-when-kind").value, every = $("b-every").value;
  for (const part of document.querySelectorAll("#builder [data-when]")) part.hidden = part.dataset.when !== kind;
  $("b-days").hidden = kind !== "recurring" || every !== "weekly";
  $("b-day-of-month-label").hidden = kind !== "recurring" || every !== "monthly";
}

// ------------------------------------------------------------------------------ scenario and parameters
function renderScenarios() {
  $("b-scenario").replaceChildren(...state.scenarios.map((s) => element("option", { value: s.scenario }, s.name || s.scenario)));
}

// One typed input per parameter, with its range, default and description (units) from the catalogue's schema.
function renderParams(values = {}) {
  const spec = state.scenarios.find((s) => s.scenario === $("b-scenario").value);
  $("b-scenario-description").textContent = spec ? spec.description : "";
  const rows = Object.entries((spec && spec.parameters) || {}).map(([name, schema]) => {
    const type = schema.type || (schema.anyOf || []).map((a) => a.type).find((t) => t && t !== "null");
    const value = values[name] ?? schema.default ?? "";
    let input;
    if (schema.enum) {
      input = element("select", { dataset: { param: name, kind: "string" } },
        ...schema.enum.map((v) => element("option", { value: v, selected: v === value }, v)));
    } else {
      const numeric = type === "number" || type === "integer";
      const bounds = (schema.anyOf || [schema]).find((a) => a.type === type) || schema;
      input = element("input", { type: numeric ? "number" : "text", step: type === "integer" ? "1" : "any",
        min: bounds.minimum ?? bounds.exclusiveMinimum, max: bounds.maximum ?? bounds.exclusiveMaximum,
        dataset: { param: name, kind: numeric ? "number" : "string" } });
      input.value = value;
    }
    const range = ["minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"].some((b) => schema[b] != null)
      ? ` (${schema.minimum ?? schema.exclusiveMinimum ?? ""}…${schema.maximum ?? schema.exclusiveMaximum ?? ""}`
        + `, default ${schema.default ?? "none"})` : "";
    return element("div", { class: "field" },
      element("label", {}, `${schema.title || name}${range}`, input),
      element("p", { class: "hint" }, schema.description || ""),
      element("span", { class: "field-error", dataset: { errorFor: `params.${name}` } }));
  });
  $("b-params").replaceChildren(...rows, element("span", { class: "field-error", dataset: { errorFor: "params" } }));
}

// ------------------------------------------------------------------------------ targets: site → string → jar
function selected(kind) { return event().targets[kind]; }
function toggle(kind, id, on) {
  const list = selected(kind);
  const at = list.indexOf(id);
  if (on && at < 0) list.push(id);
  if (!on && at >= 0) list.splice(at, 1);
  renderTargetSummary();
}

function checkbox(kind, id, text) {
  const box = element("input", { type: "checkbox", checked: selected(kind).includes(id), dataset: { kind, id } });
  box.addEventListener("change", () => toggle(kind, id, box.checked));
  return element("label", { class: "check" }, box, text);
}

function renderTargets() {
  const tree = $("b-tree");
  if (!state.tree) { tree.replaceChildren(element("p", { class: "hint" }, "No fleet to pick from yet.")); return; }
  const query = $("b-target-search").value.trim().toLowerCase();
  const hit = (...texts) => !query || texts.some((t) => t && t.toLowerCase().includes(query));
  const sites = [];
  for (const site of state.tree.sites) {
    const strings = [];
    for (const string of site.strings) {
      const jars = string.batteries.filter((b) => hit(b));
      if (!hit(site.site_id, site.name, string.string_id) && !jars.length) continue;
      const shown = hit(site.site_id, site.name, string.string_id) ? string.batteries : jars;
      strings.push(element("details", { class: "tree-string", open: Boolean(query && jars.length) },
        element("summary", {}, checkbox("strings", string.string_id, string.string_id)),
        element("div", { class: "tree-jars" }, ...shown.map((b) => checkbox("batteries", b, b.slice(string.string_id.length + 1) || b)))));
    }
    if (!strings.length && !hit(site.site_id, site.name)) continue;
    sites.push(element("details", { class: "tree-site", open: Boolean(query) },
      element("summary", {}, checkbox("sites", site.site_id, `${site.site_id} ${site.name}`),
        element("span", { class: "hint" }, ` ${site.timezone}`)),
      ...strings));
  }
  tree.replaceChildren(...(sites.length ? sites : [element("p", { class: "hint" }, "Nothing matches.")]));
  renderTargetSummary();
}

function renderTargetSummary() {
  const t = event().targets;
  const parts = ["sites", "strings", "batteries"].filter((k) => t[k].length).map((k) => `${k}: ${t[k].join(", ")}`);
  $("b-target-summary").textContent = parts.length ? parts.join("; ") : "none chosen: the whole fleet";
}

// ------------------------------------------------------------------------------ the events of the timeline
function renderEventList() {
  const items = state.form.events.map((e, index) => {
    const button = element("button", { type: "button", class: index === state.current ? "small current" : "small",
      dataset: { event: index } }, `${index + 1}. ${e.name || e.scenario} (${e.when.kind})`);
    button.addEventListener("click", () => { readInputs(); state.current = index; writeInputs(); });
    return button;
  });
  $("b-events").replaceChildren(...items);
  $("b-remove").disabled = state.form.events.length < 2;
}

// ------------------------------------------------------------------------------ server messages beside fields
function clearErrors() {
  state.errors = [];
  for (const slot of document.querySelectorAll("#builder .field-error")) slot.textContent = "";
  $("b-error").textContent = "";
}

// A 422's loc (["body", "form", "events", 0, "when", "time"]) → the field's slot ("when.time"), the nearest
// enclosing one (params.x → params), else the general message line. An error in another event selects it.
function showError(error) {
  clearErrors();
  const details = Array.isArray(error.detail) ? error.detail
    : [{ loc: [], msg: typeof error.detail === "string" ? error.detail : error.message }];
  for (const detail of details) {
    let loc = (detail.loc || []).filter((p) => p !== "body");
    if (loc[0] === "form") loc = loc.slice(1);
    if (loc[0] === "events" && Number.isInteger(loc[1])) {
      if (loc[1] !== state.current && loc[1] < state.form.events.length) { state.current = loc[1]; writeInputs(); }
      loc = loc.slice(2);
    }
    if (loc[0] === "when" && ["once", "recurring", "random"].includes(loc[1])) loc = ["when", ...loc.slice(2)];
    let slot = null;
    for (let n = loc.length; n > 0 && !slot; n--) {
      slot = document.querySelector(`#builder .field-error[data-error-for="${CSS.escape(loc.slice(0, n).join("."))}"]`);
    }
    slot = slot || $("b-error");
    slot.textContent = detail.msg;
    state.errors.push({ field: slot.dataset.errorFor || "", message: detail.msg });
  }
}

// Every action: read the inputs, call the server, show its message next to the field if it refuses.
function action(fn) {
  return async (domEvent) => {
    if (domEvent) domEvent.preventDefault();
    readInputs();
    clearErrors();
    try { await fn(); } catch (error) {
      if (error instanceof ServerError) showError(error);
      else { $("b-error").textContent = String(error.message || error); state.errors.push({ field: "", message: String(error) }); }
    }
  };
}

// ------------------------------------------------------------------------------ preview and its chart
async function running() {
  const status = await api("GET", "simulation/status");
  return Boolean(status.is_running);
}

// The fleet to preview on: the running simulation's, else the preset chosen in the Simulation panel.
async function fleetQuery() {
  return (await running()) ? {} : { preset: $("preset").value || "thailand-9x24" };
}

const preview = action(async () => {
  state.preview = await api("POST", "timeline/preview", { form: state.form, count: PREVIEW_COUNT, ...(await fleetQuery()) });
  renderPreview();
});

function localText(row) {
  return row.local.map((l) => `${l.start.slice(0, 16).replace("T", " ")} → ${l.end ? l.end.slice(11, 16) : "…"} `
    + `${l.timezone} (UTC${l.utc_offset}${l.utc_offset_end && l.utc_offset_end !== l.utc_offset ? ` → UTC${l.utc_offset_end}` : ""})`
    + ` ${l.sites.length > 3 ? `${l.sites.length} sites` : l.sites.join(", ")}`).join("; ");
}

function renderPreview() {
  const answer = state.preview;
  const rows = answer.occurrences.map((row, index) => element("tr", { dataset: { start: row.start } },
    element("td", {}, String(index + 1)), element("td", {}, row.scenario),
    element("td", { class: "mono" }, row.start.slice(0, 16).replace("T", " ") + "Z"),
    element("td", { class: "mono local" }, localText(row))));
  const randoms = answer.random.map((r) => element("tr", {},
    element("td", {}, "~"), element("td", {}, r.kind), element("td", {}, `${r.rate_per_year ?? "site rate"} a year`),
    element("td", {}, r.site_ids.join(", "))));
  $("b-occurrences").replaceChildren(...rows, ...randoms);
  $("b-preview-note").textContent = `On ${answer.fleet}, from ${answer.since.slice(0, 16).replace("T", " ")}Z: `
    + `the next ${answer.occurrences.length} occurrences` + (answer.installed
      ? `; installed already: ${answer.installed.occurrences.length} upcoming, ${answer.installed.active.length} acting now` : "");
  $("b-toml").textContent = answer.toml;
  drawChart(answer);
}

// This timeline's occurrences and the installed ones on one time axis, a bar each (its duration, at least 2 px).
function drawChart(answer) {
  const chart = $("b-chart");
  const width = Math.max(300, chart.clientWidth || 600), rowHeight = 22, left = 70, height = rowHeight * 2 + 24;
  const lanes = [["this timeline", answer.occurrences], ["installed", answer.installed ? answer.installed.occurrences : []]];
  const times = lanes.flatMap(([, rows]) => rows.flatMap((r) => [Date.parse(r.start), Date.parse(r.end || r.start)]));
  times.push(Date.parse(answer.since));
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 3600e3);
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - 10);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  lanes.forEach(([name, rows], lane) => {
    const y = 4 + lane * rowHeight;
    const label = svg("text", { x: 4, y: y + 14, class: "lane" });
    label.textContent = name;
    root.append(label);
    for (const row of rows) {
      const start = Date.parse(row.start), end = Date.parse(row.end || row.start);
      const bar = svg("rect", { x: x(start), y, width: Math.max(2, x(end) - x(start)), height: rowHeight - 6,
        class: lane ? "bar installed" : "bar", "data-start": row.start });
      const title = svg("title");
      title.textContent = `${row.scenario}: ${localText(row)}`;
      bar.append(title);
      root.append(bar);
    }
  });
  for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
    const tick = svg("text", { x: anchor === "start" ? left : width - 10, y: height - 4, "text-anchor": anchor, class: "tick" });
    tick.textContent = new Date(t).toISOString().slice(0, 16).replace("T", " ") + "Z";
    root.append(tick);
  }
  chart.replaceChildren(root);
  chart.dataset.bars = String(answer.occurrences.length);
  chart.dataset.installed = String(lanes[1][1].length);
}

// ------------------------------------------------------------------------------ install, start, download, open
const install = action(async () => {
  const result = await api("POST", "timeline", { form: state.form });
  $("b-result").textContent = `Installed (${result.events.length} ${result.events.length === 1 ? "entry" : "entries"}) in the running simulation.`;
  document.dispatchEvent(new CustomEvent("battsim:timeline-installed"));
  state.preview = await api("POST", "timeline/preview", { form: state.form, count: PREVIEW_COUNT });
  renderPreview();
});

const startWith = action(async () => {
  const { toml } = await api("POST", "timeline/toml", { form: state.form });
  // Started by app.js like its Start button (its preset, seed, interval, speed), with this timeline.
  document.dispatchEvent(new CustomEvent("battsim:start-with-timeline", { detail: toml }));
  $("b-result").textContent = "Starting a new simulation with this timeline.";
});

const download = action(async () => {
  const { toml } = await api("POST", "timeline/toml", { form: state.form });
  const link = element("a", { href: URL.createObjectURL(new Blob([toml], { type: "application/toml" })),
    download: `${(state.form.name || "timeline").replace(/[^\w.-]+/g, "-")}.toml` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
});

async function open(file) {
  clearErrors();
  try {
    const { form } = await api("POST", "timeline/form", { timeline: await file.text() });
    if (!form.events.length) form.events.push(blankEvent());
    state.form = form;
    state.current = 0;
    writeInputs();
    $("b-result").textContent = `Opened ${file.name}: ${form.events.length} ${form.events.length === 1 ? "event" : "events"}.`;
  } catch (error) {
    if (error instanceof ServerError) showError(error); else $("b-error").textContent = String(error.message || error);
  }
}

async function loadTree() {
  try {
    state.tree = await api("GET", `timeline/targets${(await running()) ? "" : `?preset=${encodeURIComponent($("preset").value || "thailand-9x24")}`}`);
  } catch {
    state.tree = null; // no fleet to show (the preset is unknown or the server is gone): an empty tree
  }
  renderTargets();
}

// ------------------------------------------------------------------------------ wiring
function wire() {
  $("b-scenario").addEventListener("change", () => renderParams());
  $("b-when-kind").addEventListener("change", showWhen);
  $("b-every").addEventListener("change", showWhen);
  $("b-target-search").addEventListener("input", renderTargets);
  $("b-preview").addEventListener("click", preview);
  $("b-install").addEventListener("click", install);
  $("b-start").addEventListener("click", startWith);
  $("b-download").addEventListener("click", download);
  $("b-open").addEventListener("change", () => { const file = $("b-open").files[0]; if (file) open(file); $("b-open").value = ""; });
  $("b-add").addEventListener("click", () => { readInputs(); state.form.events.push(blankEvent()); state.current = state.form.events.length - 1; writeInputs(); });
  $("b-remove").addEventListener("click", () => {
    state.form.events.splice(state.current, 1);
    state.current = Math.max(0, state.current - 1);
    writeInputs();
  });
  // The fleet tree follows the running simulation, or the preset picked when none runs.
  $("builder").addEventListener("toggle", () => { if ($("builder").open) loadTree(); });
  $("preset").addEventListener("change", () => { if ($("builder").open) loadTree(); });
  document.addEventListener("battsim:simulation-changed", () => { if ($("builder").open) loadTree(); });
}

async function boot() {
  const days = $("b-days");
  days.replaceChildren(...WEEKDAYS.map((d) => element("label", { class: "check" }, element("input", { type: "checkbox", id: `b-day-${d}` }), d)),
    element("span", { class: "field-error", dataset: { errorFor: "when.days" } }));
  state.form.events = [blankEvent()];
  wire();
  state.scenarios = await api("GET", "scenarios");
  renderScenarios();
  writeInputs();
  $("builder").dataset.ready = "true";
}

window.__battsimBuilder = {
  get form() { return JSON.parse(JSON.stringify(state.form)); },
  get preview() { return state.preview; },
  get errors() { return state.errors.slice(); },
  get tree() { return state.tree; },
};

boot().catch((error) => { $("b-error").textContent = `builder: ${error.message || error}`; });
