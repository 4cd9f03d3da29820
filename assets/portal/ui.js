// Small helpers every screen uses: building elements, money and dates, errors in words,
// and lists that load their next page as you scroll.

/** Builds an element: `h("button", { class: "primary", onclick }, "Save")`. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const digitsCache = new Map();
function digits(currency) {
  if (!digitsCache.has(currency)) {
    let n = 2;
    try {
      n = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
    } catch {
      /* an unknown code keeps 2 */
    }
    digitsCache.set(currency, n);
  }
  return digitsCache.get(currency);
}

/** Minor units as money: `money(-550, "EUR")` is "-€5.50". */
export function money(minor, currency) {
  if (minor === null || minor === undefined) return "—";
  const n = digits(currency);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency, minimumFractionDigits: n })
      .format(minor / 10 ** n);
  } catch {
    return `${(minor / 10 ** n).toFixed(n)} ${currency}`;
  }
}

/** A typed amount ("12.5") in minor units, or NaN. */
export function toMinor(text, currency) {
  const value = Number(String(text).replace(/[\s,]/g, ""));
  return Number.isFinite(value) ? Math.round(value * 10 ** digits(currency)) : NaN;
}

export function minorToText(minor, currency) {
  const n = digits(currency);
  return (minor / 10 ** n).toFixed(n);
}

export function day(value) {
  return value ? String(value).slice(0, 10) : "—";
}

export function when(value) {
  return value ? new Date(value).toLocaleString() : "—";
}

export function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/** A coloured word for a state, e.g. `matched` or `paid`. */
export function badge(state) {
  return h("span", { class: `badge badge-${String(state).replace(/[^a-z_]/g, "")}` }, String(state).replace(/_/g, " "));
}

/** An error in words: the problem's detail, and each field's message. */
export function errorBox(error) {
  const fields = (error.errors || []).map((e) => h("li", {}, `${e.field}: ${e.message}`));
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, error.message || String(error)),
    fields.length ? h("ul", {}, fields) : null,
  );
}

/** Hands `blob` to the browser as a download named `filename`. */
export function saveBlob(blob, filename) {
  const link = h("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/** Shows a short message that reads itself to screen readers, then goes. */
export function notify(text) {
  let region = document.getElementById("notice");
  if (!region) {
    region = h("div", { id: "notice", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  region.textContent = text;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => (region.textContent = ""), 5000);
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A labelled input; `h("input")` attributes in `attrs`. */
export function field(label, attrs = {}) {
  const id = attrs.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  const control = attrs.options
    ? h("select", { ...attrs, options: undefined, id }, attrs.options.map(([v, t]) => h("option", { value: v }, t)))
    : h("input", { ...attrs, id });
  return h("label", { class: "field", for: id }, h("span", {}, label), control);
}

/** A page's heading and body. */
export function screen(title, ...children) {
  document.title = `${title} · Payymo`;
  return [h("h1", { tabindex: "-1" }, title), ...children];
}

/**
 * A table whose rows come a page at a time from a cursor-paged list and keep coming as the
 * user scrolls to its end. `load(cursor)` returns `{ data, has_more, next_cursor }`; `row(item)`
 * makes a <tr>. Returns the element and `reload()`.
 */
export function endlessTable(columns, load, row, { empty = "Nothing here yet." } = {}) {
  const body = h("tbody");
  const status = h("p", { class: "muted", role: "status" });
  const sentinel = h("div", { class: "sentinel" });
  const table = h(
    "div",
    { class: "table-wrap" },
    h("table", {}, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))), body),
  );
  let cursor = null;
  let done = false;
  let busy = false;
  let generation = 0;
  async function more() {
    if (busy || done) return;
    busy = true;
    const mine = generation;
    status.textContent = "Loading…";
    try {
      const page = await load(cursor);
      if (mine !== generation) return;
      const started = performance.now();
      append(body, page.data.map(row));
      const rendered = performance.now() - started;
      table.dataset.renderMs = rendered.toFixed(1);
      cursor = page.next_cursor;
      done = !page.has_more || !cursor;
      status.textContent = body.children.length ? (done ? "" : "") : empty;
    } catch (error) {
      if (mine === generation) fill(status, errorBox(error));
      done = true;
    } finally {
      if (mine === generation) busy = false;
    }
    if (!done && sentinel.getBoundingClientRect().top < innerHeight + 200) more();
  }
  const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && more(), {
    rootMargin: "200px",
  });
  observer.observe(sentinel);
  function reload() {
    generation += 1;
    cursor = null;
    done = false;
    busy = false;
    body.replaceChildren();
    return more();
  }
  reload();
  return { element: h("div", {}, table, status, sentinel), reload, body };
}
