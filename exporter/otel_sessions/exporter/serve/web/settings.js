// Viewer settings: where a trace viewer (Jaeger UI, Grafana) lives, and the query token.
// The trace viewer URL comes from ?jaeger=<url> on the page's address (kept in localStorage)
// or from the settings dialog: a base URL ("http://localhost:16686": links go to
// <base>/trace/<trace id>) or a template holding "{trace_id}" (a Grafana Explore link).

import { forgetToken, hasToken } from "./api.js";
import { h } from "./dom.js";

const VIEWER_KEY = "otel-sessions.trace-viewer";

function valid(url) {
  return /^https?:\/\/[^\s]+$/i.test(url || "");
}

/** Read ?jaeger= from the address once, at start-up. */
export function readAddress() {
  const given = new URLSearchParams(location.search).get("jaeger");
  if (given !== null) {
    if (valid(given)) localStorage.setItem(VIEWER_KEY, given);
    else if (given === "") localStorage.removeItem(VIEWER_KEY);
  }
}

export function traceViewer() {
  const url = localStorage.getItem(VIEWER_KEY);
  return valid(url) ? url : null;
}

/** A link to ``traceId`` in the configured trace viewer, or null. */
export function traceViewerLink(traceId) {
  const base = traceViewer();
  if (!base) return null;
  return base.includes("{trace_id}") ? base.replaceAll("{trace_id}", traceId) : base.replace(/\/+$/, "") + "/trace/" + traceId;
}

/** The settings dialog. ``changed`` is called after a save. */
export function openSettings(changed) {
  const viewer = h("input", { type: "url", name: "viewer", value: traceViewer() || "", placeholder: "http://localhost:16686",
                              "aria-label": "trace viewer URL" });
  const problem = h("p", { class: "error small hidden" });
  const forget = h("button", { type: "button", class: "secondary", text: "Forget the query token", disabled: !hasToken() });
  forget.addEventListener("click", () => { forgetToken(); forget.disabled = true; forget.textContent = "Token forgotten"; });
  const form = h("form", { method: "dialog" },
    h("h3", { text: "Settings" }),
    h("p", { class: "muted small", text: "Trace viewer (Jaeger UI, or Grafana with a Jaeger data source pointed at this service's /api): "
      + "a base URL, or a URL with {trace_id} in it. Also settable with ?jaeger=<url> on this page's address." }),
    viewer, problem,
    h("p", null, forget),
    h("div", { class: "actions" },
      h("button", { type: "submit", value: "cancel", class: "secondary", formnovalidate: true, text: "Cancel" }),
      h("button", { type: "submit", value: "save", text: "Save" })));
  const dialog = h("dialog", { class: "settings-dialog" }, form);
  form.addEventListener("submit", (event) => {
    if (event.submitter?.value !== "save") return;
    const url = viewer.value.trim();
    if (url && !valid(url)) {
      event.preventDefault();
      problem.textContent = "Not an http(s) URL.";
      problem.classList.remove("hidden");
    }
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") {
      const url = viewer.value.trim();
      if (url) localStorage.setItem(VIEWER_KEY, url);
      else localStorage.removeItem(VIEWER_KEY);
      changed?.();
    }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
}
