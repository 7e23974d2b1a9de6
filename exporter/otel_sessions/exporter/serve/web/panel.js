// The span side panel: one span in full (GET /v1/sessions/{id}/spans/{span_id}, or the same
// shape built from the stored OTLP span when the service has no such route): its error and
// exception first, then facts, usage and cost, attributes, events, links, resource.

import { copyButton, fmtCost, fmtInt, fmtMs, fmtTime, h, isoToUs, pretty } from "./dom.js";
import { agentChip, spanHash } from "./links.js";
import { traceViewerLink } from "./settings.js";

function value(v) {
  if (v === null || v === undefined) return h("span", { class: "muted", text: "null" });
  const text = pretty(v);
  return text.includes("\n") || text.length > 120 ? h("pre", { text }) : h("span", { class: "mono", text });
}

function kvTable(object, label) {
  const entries = Object.entries(object || {});
  if (!entries.length) return h("p", { class: "muted small", text: "none" });
  return h("table", { class: "kv", "aria-label": label }, h("tbody", null,
    entries.map(([k, v]) => h("tr", null, h("td", { text: k }), h("td", null, value(v))))));
}

function section(title, ...body) {
  return h("section", null, h("h4", { text: title }), ...body);
}

/**
 * The panel's content for ``d`` (SpanDetails); ``span`` is the page's own record of it (its
 * agent and kind), ``usage`` its entry of GET /v1/sessions/{id}/usage or null.
 */
export function spanPanel(d, { span, usage, agent, sessionId, onClose }) {
  const failed = d.status?.code === "error" || Boolean(d.exception);
  const close = h("button", { type: "button", class: "secondary close", "aria-label": "close the span panel", text: "✕" });
  close.addEventListener("click", onClose);
  const startUs = isoToUs(d.start_time);
  const viewer = traceViewerLink(d.trace_id);
  const exception = d.exception;
  const errorBox = failed ? h("div", { class: "exception", role: "alert" },
    h("div", { class: "errmsg", text: exception ? [exception.type, exception.message].filter(Boolean).join(": ") || "exception"
                                                 : d.status?.message || "status: error" }),
    exception && d.status?.message && d.status.message !== exception.message
      ? h("div", { class: "small", text: "status: " + d.status.message }) : null,
    exception?.stacktrace ? h("details", { open: true }, h("summary", { class: "small", text: "stack trace" }), h("pre", { text: exception.stacktrace })) : null) : null;
  const facts = {
    duration: fmtMs(d.duration_ms),
    start: fmtTime(startUs),
    kind: d.kind,
    status: d.status?.code + (d.status?.message ? " — " + d.status.message : ""),
  };
  const ids = h("table", { class: "kv" }, h("tbody", null,
    agent ? h("tr", null, h("td", { text: "agent" }), h("td", null, agentChip(agent))) : null,
    Object.entries(facts).map(([k, v]) => h("tr", null, h("td", { text: k }), h("td", { text: v }))),
    h("tr", null, h("td", { text: "trace id" }), h("td", null, h("code", { text: d.trace_id }), " ", copyButton(d.trace_id),
      viewer ? [" ", h("a", { href: viewer, target: "_blank", rel: "noopener noreferrer", text: "viewer ↗" })] : null)),
    h("tr", null, h("td", { text: "span id" }), h("td", null, h("code", { text: d.span_id }), " ", copyButton(d.span_id))),
    h("tr", null, h("td", { text: "parent" }), h("td", null, d.parent_span_id
      ? h("a", { href: spanHash(sessionId, d.trace_id, d.parent_span_id), class: "mono", text: d.parent_span_id })
      : h("span", { class: "muted", text: "none (a root span)" }))),
    d.resource?.["service.name"] ? h("tr", null, h("td", { text: "service" }), h("td", { text: d.resource["service.name"] })) : null,
    d.scope ? h("tr", null, h("td", { text: "scope" }), h("td", { text: d.scope.name + (d.scope.version ? " " + d.scope.version : "") })) : null));
  const usageBox = usage ? section("usage and cost", h("table", { class: "kv" }, h("tbody", null,
    h("tr", null, h("td", { text: "tokens" }), h("td", { text: `${fmtInt(usage.input_tokens)} in · ${fmtInt(usage.output_tokens)} out` })),
    usage.cache_read_tokens || usage.cache_write_tokens ? h("tr", null, h("td", { text: "cached input" }),
      h("td", { text: `${fmtInt(usage.cache_read_tokens)} read · ${fmtInt(usage.cache_write_tokens)} written` })) : null,
    usage.reasoning_tokens ? h("tr", null, h("td", { text: "reasoning" }), h("td", { text: fmtInt(usage.reasoning_tokens) })) : null,
    h("tr", null, h("td", { text: "cost" }), h("td", { text: fmtCost(usage.cost_usd) + (usage.cost_estimated ? " (estimated from the price table)" : "") })),
    h("tr", null, h("td", { text: "in the session's totals" }), h("td", { text: usage.counted ? "yes"
      : "no: an aggregating span (its model calls are counted instead)" }))))) : null;
  const events = (d.events || []).map((e) => h("div", { class: ["event", e.name === "exception" && "failed"] },
    h("div", null, h("b", { text: e.name }), h("span", { class: "muted small",
      text: startUs !== null && e.time ? "  +" + fmtMs((isoToUs(e.time) - startUs) / 1000) : "" })),
    Object.keys(e.attributes || {}).length ? kvTable(e.attributes, "event attributes") : null));
  return [
    close,
    h("h3", null, span ? h("span", { class: ["kind", span.kind], text: span.kind }) : null, d.name),
    errorBox,
    section("span", ids),
    usageBox,
    section("attributes", kvTable(d.attributes, "attributes")),
    events.length ? section(`events (${events.length})`, events) : null,
    (d.links || []).length ? section("links", (d.links || []).map((l) => h("div", { class: "small mono", text: `${l.trace_id} / ${l.span_id}` }))) : null,
    section("resource", h("details", null, h("summary", { class: "small", text: Object.keys(d.resource || {}).length + " attributes" }),
      kvTable(d.resource, "resource attributes"))),
    section("as JSON", h("details", null, h("summary", { class: "small", text: "SpanDetails" }), h("pre", { text: JSON.stringify(d, null, 2) }))),
  ];
}
