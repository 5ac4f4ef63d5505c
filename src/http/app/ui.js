// DOM and formatting helpers. Every piece of data reaches the page through textContent or an
// attribute set here: nothing builds HTML from strings.

/** The element with this id (the page's ids are fixed, so a missing one is a bug in index.html). */
export const $ = (id) => document.getElementById(id);

/**
 * A new element. `props`: `class`, `text`, `dataset` (object), `attrs` (object, set with
 * setAttribute), `on` (object of event listeners); other keys are assigned as properties.
 * `children`: nodes or strings (strings become text nodes); null and false are skipped.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "attrs") for (const [k, v] of Object.entries(value)) node.setAttribute(k, String(v));
    else if (key === "on") for (const [k, v] of Object.entries(value)) node.addEventListener(k, v);
    else node[key] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Sets the text of `node` only when it changes: rewriting a live region with the same words would
 * make a screen reader say them again.
 */
export function setText(node, text) {
  const value = String(text ?? "");
  if (node.textContent !== value) node.textContent = value;
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Says `text` to screen readers (the page's assertive live region). */
export function announce(text) {
  const region = $("announcer");
  if (!region) return;
  // Clearing first makes a repeated sentence announced again.
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 30);
}

/** Seconds as m:ss, or h:mm:ss from an hour on. */
export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(Number(totalSeconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A Date from an RFC 3339 string or Unix milliseconds; null when neither. */
export function toDate(value) {
  if (value === null || value === undefined) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const yearFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** A short local time: "14:03" today, "Yesterday 14:03", "25 Nov 14:03", with the year when not this one. */
export function formatWhen(value) {
  const d = toDate(value);
  if (!d) return "";
  const now = new Date();
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const t = d.getTime();
  if (t >= startOfToday) return timeFormat.format(d);
  if (t >= startOfToday - 86_400_000) return `Yesterday ${timeFormat.format(d)}`;
  const day = d.getFullYear() === now.getFullYear() ? dayFormat.format(d) : yearFormat.format(d);
  return `${day} ${timeFormat.format(d)}`;
}

/**
 * A `<time>` element with the short form shown and the full one as a tooltip; `dateOnly` shows
 * the day alone.
 */
export function timeElement(value, { dateOnly = false } = {}) {
  const d = toDate(value);
  if (!d) return el("time");
  const shown = dateOnly ? yearFormat.format(d) : formatWhen(d);
  return el("time", { dateTime: d.toISOString(), title: fullFormat.format(d), text: shown });
}

/** The user part of a SIP or tel URI (`sip:+4930123@host;x=y` → `+4930123`); other text as is. */
export function uriUser(uri) {
  if (typeof uri !== "string" || uri === "") return "";
  let s = uri.trim();
  const angle = s.match(/<([^>]*)>/);
  if (angle) s = angle[1];
  s = s.replace(/^(sips?|tel):/i, "");
  s = s.split("@")[0].split(";")[0];
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Up to two initials of a name, for the avatar circle. */
export function initials(name) {
  // Words that start with a letter: a phone number or markup-like text has no initials.
  const words = String(name || "").trim().split(/\s+/).filter((w) => /^\p{L}/u.test(w));
  if (words.length === 0) return "#";
  const first = [...words[0]][0] || "";
  const last = words.length > 1 ? [...words[words.length - 1]][0] || "" : "";
  return (first + last).toUpperCase();
}

/**
 * One of the eight avatar colour classes (`tint-0` … `tint-7`), from a string, so a customer keeps
 * their colour. Classes, not inline styles: the Content-Security-Policy allows no inline style.
 */
export function tintOf(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 8;
  return `tint-${h}`;
}

/** A readable message for an error thrown by api.js or anything else. */
export function errorText(error) {
  if (error && typeof error.message === "string" && error.message) return error.message;
  return "Something went wrong.";
}
