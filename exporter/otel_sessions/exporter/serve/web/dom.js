// DOM building and formatting. Every piece of data reaches the page as a text node or an
// attribute value set through the DOM API: nothing here parses HTML.

const SAFE_URL = /^(#|\/(?!\/)|https?:\/\/)/i;

/** A safe href: same-page hashes, same-origin paths, or http(s) URLs; anything else is "#". */
export function safeHref(url) {
  const text = String(url ?? "");
  return SAFE_URL.test(text) ? text : "#";
}

/**
 * h("div", {class: "x", text: "..", on: {click}, dataset: {}, title, href, ...attrs}, ...children)
 * Children: strings (text nodes), nodes, arrays of them; null, undefined and false are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "on") for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key === "style") Object.assign(el.style, value);
      else if (key === "href") el.setAttribute("href", safeHref(value));
      else if (key === "value") el.value = value;
      else if (key === "checked" || key === "disabled" || key === "open" || key === "selected") el[key] = Boolean(value);
      else if (/^[a-z][a-z0-9-]*$/i.test(key) && !/^on/i.test(key)) el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of ``el``. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- numbers, durations, money, time ---------------------------------------------------

const INT = new Intl.NumberFormat("en-US");

export function fmtInt(n) {
  return INT.format(Math.round(Number(n) || 0));
}

/** A compact token count: 1234 -> "1.2k". */
export function fmtTokens(n) {
  n = Number(n) || 0;
  if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(0) + "k";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(n);
}

export function fmtMs(ms) {
  ms = Number(ms) || 0;
  if (ms >= 3600000) return (ms / 3600000).toFixed(1) + " h";
  if (ms >= 60000) return (ms / 60000).toFixed(1) + " min";
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  if (ms >= 10) return ms.toFixed(0) + " ms";
  return ms.toFixed(ms >= 1 ? 1 : 2) + " ms";
}

/**
 * USD as the CLI writes it (cli/render.py format_usd): four decimals, or two significant
 * digits when that shows more ($0.0123, $1.5000, $0.000012; at most 10 decimals).
 */
export function fmtCost(usd) {
  const c = Number(usd) || 0;
  if (c <= 0) return "$0.0000";
  const decimals = Math.min(10, Math.max(4, 1 - Math.floor(Math.log10(c))));
  let text = c.toFixed(decimals);
  if (Number(text) === 0) return "$0.0000";
  if (decimals > 4) text = text.replace(/0+$/, "");
  return "$" + text;
}

/** RFC 3339 (µs or ns fraction) to unix microseconds; null for nothing. */
export function isoToUs(text) {
  if (!text) return null;
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/.exec(String(text));
  if (!m) {
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? null : ms * 1000;
  }
  const seconds = Date.parse(m[1] + (m[3] || "Z"));
  if (Number.isNaN(seconds)) return null;
  const fraction = (m[2] || "").padEnd(6, "0").slice(0, 6);
  return seconds * 1000 + Number(fraction);
}

export function fmtTime(us) {
  if (us === null || us === undefined) return "";
  return new Date(us / 1000).toLocaleString();
}

/** A date and time to the millisecond (log records: several within one second keep their order visible). */
export function fmtTimeMs(us) {
  if (us === null || us === undefined) return "";
  const d = new Date(us / 1000);
  return d.toLocaleDateString() + " " + d.toLocaleTimeString(undefined, { hour12: false }) + "." +
    String(d.getMilliseconds()).padStart(3, "0");
}

export function fmtClock(us) {
  if (us === null || us === undefined) return "";
  return new Date(us / 1000).toLocaleTimeString();
}

export function fmtAgo(us, now = Date.now() * 1000) {
  if (us === null || us === undefined) return "";
  const s = Math.max(0, (now - us) / 1e6);
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

/** A readable JSON value: strings as they are, the rest pretty-printed. */
export function pretty(value) {
  if (typeof value === "string") {
    const t = value.trim();
    if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
      try { return JSON.stringify(JSON.parse(t), null, 2); } catch { /* not JSON: as it is */ }
    }
    return value;
  }
  return JSON.stringify(value, null, 2);
}

/** A stable hue for a name (agents get a colour each). */
export function hue(name) {
  let x = 0;
  for (const c of String(name)) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x % 360;
}

/** A button that copies ``text`` to the clipboard (when the browser lets it). */
export function copyButton(text, label = "copy") {
  const button = h("button", { type: "button", class: "link copy", title: "copy " + text, text: label });
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "copied";
    } catch {
      button.textContent = "select it";
    }
    setTimeout(() => { button.textContent = label; }, 1200);
  });
  return button;
}

// ---- SHA-256 (for the session's synthetic trace id; crypto.subtle needs a secure context) ----

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** Hex SHA-256 of the UTF-8 bytes of ``text`` (FIPS 180-4). */
export function sha256hex(text) {
  const bytes = new TextEncoder().encode(text);
  const length = bytes.length;
  const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded.length - 4, (length << 3) >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getUint32(offset + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
      const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = H;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    H[0] += a; H[1] += b; H[2] += c; H[3] += d; H[4] += e; H[5] += f; H[6] += g; H[7] += hh;
  }
  return Array.from(H, (x) => x.toString(16).padStart(8, "0")).join("");
}

/** The Jaeger-compatible API's synthetic trace id of a session: sha256(id)[:16 bytes], hex. */
export function sessionTraceId(sessionId) {
  return sha256hex(sessionId).slice(0, 32);
}
