// The Logs tab (when the service has GET /v1/sessions/{id}/logs): the session's log records in
// time order, filtered here by severity and text, each linking to its span.

import { fill, fmtInt, fmtTimeMs, h, isoToUs, pretty } from "./dom.js";
import { spanHash } from "./links.js";

const LEVELS = [["", "all"], ["5", "debug+"], ["9", "info+"], ["13", "warn+"], ["17", "error+"]];

function severityClass(n) {
  if (n >= 21) return "fatal";
  if (n >= 17) return "error";
  if (n >= 13) return "warn";
  if (n >= 9) return "info";
  if (n >= 5) return "debug";
  return n ? "trace" : "";
}

export function renderLogs(ctx) {
  const logs = ctx.data.logs;
  const section = h("section", { class: "logs-tab" });
  if (logs?.error) return fill(section, h("p", { class: "problem", text: "The logs could not be read: " + (logs.error.message || logs.error) }));
  const records = logs?.data || [];
  const text = h("input", { type: "search", placeholder: "filter by text", "aria-label": "filter logs" });
  const level = h("select", { "aria-label": "minimum severity" }, LEVELS.map(([value, label]) => h("option", { value, text: label })));
  const body = h("tbody");
  const count = h("span", { class: "muted small" });
  const draw = () => {
    const needle = text.value.trim().toLowerCase();
    const min = Number(level.value) || 0;
    const shown = records.filter((r) => (r.severity_number || 0) >= min
      && (!needle || pretty(r.body ?? "").toLowerCase().includes(needle) || JSON.stringify(r.attributes || {}).toLowerCase().includes(needle)));
    fill(body, shown.map((r) => h("tr", null,
      h("td", { class: "nowrap", title: r.time, text: fmtTimeMs(isoToUs(r.time)) }),
      h("td", null, h("span", { class: ["sev", severityClass(r.severity_number)], text: r.severity_text || String(r.severity_number || "") })),
      h("td", { class: "wrap", text: r.service || "" }),
      h("td", { class: "body", text: pretty(r.body ?? "") }),
      h("td", null, r.span_id ? h("a", { href: spanHash(ctx.sessionId, r.trace_id, r.span_id), text: "span ↗" }) : null))));
    count.textContent = `${fmtInt(shown.length)} of ${fmtInt(records.length)} records`
      + (logs?.total > records.length ? ` (first ${fmtInt(records.length)} of ${fmtInt(logs.total)} read)` : "");
  };
  text.addEventListener("input", draw);
  level.addEventListener("change", draw);
  draw();
  if (!records.length) return fill(section, h("p", { class: "muted", text: "No log records for this session." }));
  return fill(section, h("div", { class: "toolbar" }, text, level, count),
    h("div", { class: "table scroll-x" }, h("table", { class: "logs" },
      h("thead", null, h("tr", null, ["time", "severity", "service", "message", ""].map((x) => h("th", { text: x })))), body)));
}
