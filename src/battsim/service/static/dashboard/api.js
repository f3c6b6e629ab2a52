/* The dashboard's one way to the server: requests with the access token, and errors shown on the page. */
import { $, state } from "./page.js";

export const API = "api/v1/"; // relative to the page, so the dashboard also works behind a path prefix

// A server started with a token (battsim serve --token) needs it on every request. The user opens
// /#token=... (the fragment never reaches a server, a log or a Referer) or is asked when a request is
// refused; it is kept in sessionStorage (this tab only) and taken out of the address bar.
const TOKEN_KEY = "battsim.token";
const tokenInHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (tokenInHash) {
  sessionStorage.setItem(TOKEN_KEY, tokenInHash);
  history.replaceState(null, "", location.pathname + location.search);
}
export const token = () => sessionStorage.getItem(TOKEN_KEY);
let tokenDeclined = false; // the user cancelled the prompt: do not ask again on this page

// A refused request: ``status`` and the server's ``detail`` (for a 422, one entry per offending field).
export class ServerError extends Error {
  constructor(method, path, status, data) {
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : data;
    super(`${method} /${API}${path}: ${status} ${describeDetail(detail)}`);
    this.status = status;
    this.detail = detail;
  }
}

export async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const sent = token();
  if (sent) options.headers.Authorization = `Bearer ${sent}`;
  let response = await fetch(API + path, options);
  if (response.status === 401) {
    // Refused: ask once (requests refused with the same token meanwhile just retry with the new one).
    const asked = token() !== sent ? token()
      : !tokenDeclined && window.prompt("This battsim server needs its access token (battsim serve --token):");
    if (!asked) tokenDeclined = true;
    else {
      sessionStorage.setItem(TOKEN_KEY, asked.trim());
      options.headers.Authorization = `Bearer ${asked.trim()}`;
      response = await fetch(API + path, options);
    }
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) throw new ServerError(method, path, response.status, data);
  return data;
}
export function describeDetail(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  return typeof detail === "string" ? detail : JSON.stringify(detail);
}
let toastTimer = null;
export function toast(message, kind = "error") {
  const el = $("toast");
  el.textContent = message;
  el.className = kind === "error" ? "toast" : "toast info";
  el.hidden = false;
  if (kind === "error") state.errors.push(message);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 12000 : 4000);
}
// An answer's message; its warnings (unknown ids the original's endpoints ignore) shown as an error.
export function toastResult(result) {
  if (result.warnings && result.warnings.length) toast(`${result.message}; ${result.warnings.join("; ")}`);
  else toast(result.message, "info");
}
// Runs a control action; its error becomes a message on the page (not an exception in the console).
export function action(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    try { await fn(event); } catch (error) { toast(error.message || String(error)); }
  };
}
