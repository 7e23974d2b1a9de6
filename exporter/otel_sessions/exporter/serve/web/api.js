// Calls to the service's REST API: the query token, errors, the live tail (server-sent events
// read through fetch, so the token travels in the Authorization header).

import { h } from "./dom.js";

const TOKEN_KEY = "otel-sessions.token"; // sessionStorage: this tab only

export class ApiError extends Error {
  constructor(status, message, parameter) {
    super(message);
    this.status = status;
    this.parameter = parameter || null;
  }
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export function hasToken() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) out.Authorization = "Bearer " + token;
  return out;
}

let asking = null; // one token dialog at a time; concurrent 401s wait for it

/** Ask for the query token (a modal dialog); resolves true when one was entered. */
function askToken(message) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true,
                               "aria-label": "query token" });
    const form = h("form", { method: "dialog" },
      h("h3", { text: "Token needed" }),
      h("p", { class: "muted", text: message }),
      h("p", { class: "muted", text: "Give a token with the read scope (the service's query token, or your tenant's). "
                                     + "It is kept for this tab only (session storage)." }),
      input,
      // "Use token" first: Enter in the field submits with the form's first button
      h("div", { class: "actions" },
        h("button", { type: "submit", value: "ok", text: "Use token" }),
        h("button", { type: "submit", value: "cancel", class: "secondary", formnovalidate: true, text: "Cancel" })));
    const dialog = h("dialog", { class: "token-dialog" }, form);
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok" && input.value.trim() !== "";
      if (ok) sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      dialog.remove();
      asking = null;
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

async function errorOf(response) {
  const body = await response.json().catch(() => ({}));
  return new ApiError(response.status, body.error || response.statusText || "HTTP " + response.status, body.parameter);
}

/** GET ``path`` as JSON; a 401 (or a 403 for the token given) asks for a token and tries again.
 * Throws ApiError. */
export async function api(path, { signal } = {}) {
  for (;;) {
    const response = await fetch(path, { headers: headers(), signal });
    if (response.status === 401 || (response.status === 403 && hasToken())) {
      // 401: no token, or an unknown one; 403: a known token without the read scope (ingest only,
      // say): ask for another, this tab only
      const problem = await errorOf(response);
      const why = response.status === 403 ? problem.message + ": a token with the read scope is needed"
        : hasToken() ? "The token given was not accepted: " + problem.message : problem.message;
      if (await askToken(why)) continue;
      throw problem;
    }
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }
}

/**
 * Like api() for a route this service may not have (``route``: its OpenAPI path, e.g.
 * "/v1/sessions/{session_id}/messages"): null when its OpenAPI document does not describe it
 * (nothing is asked, so no 404 shows in the console) or when it answers 404.
 */
export async function optional(path, options = {}) {
  if (options.route) {
    const doc = await describe();
    if (doc?.paths && !(options.route in doc.paths)) return null;
  }
  try {
    return await api(path, options);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

let openapi = null;

/** The service's OpenAPI document (public), once; null when it cannot be read. */
export function describe() {
  if (!openapi) openapi = fetch("/openapi.json").then((r) => (r.ok ? r.json() : null)).catch(() => null);
  return openapi;
}

/** The query parameters the service takes on ``GET /v1/sessions`` (from its OpenAPI document). */
export async function listParameters() {
  const doc = await describe();
  const params = doc?.paths?.["/v1/sessions"]?.get?.parameters;
  return params ? new Set(params.map((p) => p.name)) : null;
}

/**
 * Follow a server-sent event stream: ``onEvent(name, data)`` per event ("message" for plain
 * data events). Resolves when the stream ends; abort ``signal`` to stop. A 401 asks for the token.
 */
export async function follow(path, onEvent, signal) {
  for (;;) {
    const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
    if (response.status === 401) {
      if (await askToken((await errorOf(response)).message)) continue;
      return;
    }
    if (!response.ok || !response.body) throw await errorOf(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        let name = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith(":")) continue; // a comment: the opening line, keep-alives
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") name = text;
          else if (field === "data") data.push(text);
        }
        if (data.length) onEvent(name, data.join("\n"));
      }
    }
  }
}
