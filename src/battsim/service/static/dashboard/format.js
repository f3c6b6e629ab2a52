/* How the dashboard writes numbers and times: UTC throughout, like the server's wire format. */

export const fmt = (value, digits) => (value == null || Number.isNaN(value) ? "–" : Number(value).toFixed(digits));
export const isoSeconds = (text) => Date.parse(text) / 1000;
export function timeText(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// Distinct line colours for any number of series (golden-angle hues).
export const palette = (i) => `hsl(${(i * 137.508) % 360} 70% 62%)`;

export const entries = (n) => `${n} ${n === 1 ? "entry" : "entries"}`;
