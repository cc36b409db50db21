// Small DOM helpers: every text goes in as text (never as HTML), so nothing a server or a QR
// code says can become markup or script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/// Replaces the page's content with `nodes` and moves focus to the first heading or field.
export function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes.flat(Infinity));
  const focus = main.querySelector("[autofocus]") || main.querySelector("h1, h2");
  if (focus) {
    if (!focus.hasAttribute("tabindex") && /^H[12]$/.test(focus.tagName)) focus.setAttribute("tabindex", "-1");
    focus.focus({ preventScroll: false });
  }
}

/// A labelled input; returns [wrapper, input].
export function field(id, label, attrs = {}) {
  const input = h("input", { id, name: id, ...attrs });
  return [h("div", { class: "field" }, h("label", { for: id }, label), input), input];
}

/// A line for errors or results, read out by screen readers when it changes.
export function statusLine(id) {
  return h("p", { id, class: "status", role: "status", "aria-live": "polite" });
}

export function say(el, text, kind = "info") {
  el.textContent = text;
  el.dataset.kind = kind;
}

/// Groups a code for reading: 123 456, 1234 5678, 123 456 789.
export function grouped(code) {
  const n = code.length;
  const size = n === 8 ? 4 : 3;
  const out = [];
  for (let i = 0; i < n; i += size) out.push(code.slice(i, i + size));
  return out.join(" ");
}

export function hhmm(unix) {
  const d = new Date(unix * 1000);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/// Runs `fn` with the button disabled, so one press is one action.
export async function busy(button, fn) {
  if (button.disabled) return;
  button.disabled = true;
  try {
    return await fn();
  } finally {
    button.disabled = false;
  }
}

let noticeTimer = null;

/// A sentence above the page that outlives redraws (the verdict of an answered request).
export function notice(text, kind = "info") {
  const el = document.getElementById("notice");
  say(el, text, kind);
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => say(el, ""), 10000);
}
