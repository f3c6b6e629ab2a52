/* Markup that escapes by construction.
 *
 *   render(el, html`<td class="${kind}">${name}</td>`);
 *
 * Every value put into an html`` template is escaped (text and attribute values alike), unless it is
 * itself an html`` fragment, or an array of them, which is kept as written. render() accepts only a
 * fragment, so no string from a server or a user reaches innerHTML unescaped.
 */

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

class Fragment {
  constructor(markup) { this.markup = markup; }
  toString() { return this.markup; }
}

function piece(value) {
  if (value instanceof Fragment) return value.markup;
  if (Array.isArray(value)) return value.map(piece).join("");
  if (value == null || value === false) return "";
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export function html(strings, ...values) {
  return new Fragment(strings.reduce((markup, text, i) => markup + piece(values[i - 1]) + text));
}

export function render(el, fragment) {
  if (!(fragment instanceof Fragment)) throw new TypeError("render() takes an html`` fragment");
  el.innerHTML = fragment.markup;
}

// A definition list of [term, value] pairs (the status panels).
export const definitions = (rows) => html`${rows.map(([term, value]) => html`<dt>${term}</dt><dd>${value}</dd>`)}`;
