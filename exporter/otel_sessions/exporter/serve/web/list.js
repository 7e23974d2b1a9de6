// The session list: filters kept in the address (#/sessions?status=failed,active&metadata.plan=pro),
// sort, pages, and a live toggle that polls.

import { ApiError, api, listParameters } from "./api.js";
import { fill, fmtAgo, fmtCost, fmtInt, fmtMs, fmtTime, fmtTokens, h, isoToUs } from "./dom.js";

export const STATUSES = ["active", "idle", "completed", "failed", "abandoned", "escalated"];
const TEXT_FILTERS = [
  ["user_id", "user"], ["thread_id", "thread"], ["name", "name"], ["agent", "agent"], ["tool", "tool"],
  ["model", "model"], ["service", "service"], ["environment", "environment"],
];
// what every service version takes; newer ones say more in their OpenAPI document
const BASE_PARAMS = new Set(["limit", "offset", "user_id", "thread_id", "name", "status", "service", "model",
                             "start_time", "end_time", "sort_by", "sort_order", "metadata"]);
const SINCE = [["", "any time"], ["15m", "last 15 min"], ["1h", "last hour"], ["6h", "last 6 hours"],
               ["24h", "last 24 hours"], ["7d", "last 7 days"], ["custom", "between…"]];
const SINCE_MS = { "15m": 9e5, "1h": 3.6e6, "6h": 2.16e7, "24h": 8.64e7, "7d": 6.048e8 };
const SORTS = [["start", "started"], ["last_activity", "last activity"], ["duration", "duration"], ["traces", "traces"],
               ["spans", "spans"], ["tokens", "tokens"], ["cost", "cost"], ["end", "ended"]];
const PAGE_SIZES = [25, 50, 100, 200];
const LIVE_KEY = "otel-sessions.live-list";
const POLL_MS = 5000;

function localInput(iso) {
  const us = isoToUs(iso);
  if (us === null) return "";
  const d = new Date(us / 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A query string that keeps "," and ":" readable (status=failed,active, times). */
export function queryString(params) {
  const keep = (text) => encodeURIComponent(text).replace(/%2C/gi, ",").replace(/%3A/gi, ":");
  return [...params].map(([k, v]) => keep(k) + "=" + keep(v)).join("&");
}

/** The GET /v1/sessions query of the page's address: only parameters the service takes. */
export function apiQuery(params, supported, now = Date.now()) {
  const query = new URLSearchParams();
  const ignored = [];
  for (const [key, value] of params) {
    if (!value) continue;
    const name = key.startsWith("metadata.") ? "metadata" : key;
    if (key === "since") {
      if (SINCE_MS[value]) query.set("start_time", new Date(now - SINCE_MS[value]).toISOString());
    } else if (supported.has(name)) {
      query.set(key, value);
    } else if (key !== "live") {
      ignored.push(key);
    }
  }
  return { query, ignored };
}

/** A session's cost, with its "estimated" mark. */
export function costText(session) {
  return fmtCost(session.cost_usd) + (session.cost_estimated ? "*" : "");
}

export const COST_LEGEND = "* cost estimated from the model price table (the spans carried no cost)";

/** The conversation figures as a tooltip: model calls, time to first token, tools. */
function figuresTitle(f) {
  if (!f) return "not computed in this answer";
  const parts = [`${f.user_messages} user, ${f.assistant_messages} assistant`, `${f.model_calls} model calls`];
  if (f.response_latency_ms != null) parts.push("mean call " + fmtMs(f.response_latency_ms));
  if (f.time_to_first_token_ms != null) parts.push("first token " + fmtMs(f.time_to_first_token_ms));
  if (f.tool_calls) parts.push(`${f.tool_calls} tool calls (${f.tool_errors} failed), mean ` + fmtMs(f.tool_latency_ms));
  return parts.join(" · ");
}

/** A table of sessions; ``sort`` ({by, order, onSort}) makes the headers sort buttons. */
export function sessionsTable(sessions, sort) {
  const columns = [
    ["session"], ["status"], ["user"], ["started", "start"], ["messages", null, true], ["duration", "duration", true],
    ["traces", "traces", true], ["spans", "spans", true], ["tokens", "tokens", true], ["cost", "cost", true],
  ];
  const head = h("tr", null, columns.map(([label, key, num]) => {
    if (!sort || !key) return h("th", { class: num ? "num" : null, text: label });
    const on = sort.by === key;
    const button = h("button", { type: "button", class: ["sort", on && "on"], text: label + (on ? (sort.order === "desc" ? " ▼" : " ▲") : ""),
                                 title: "sort by " + label });
    button.addEventListener("click", () => sort.onSort(key, on && sort.order === "desc" ? "asc" : "desc"));
    return h("th", { class: num ? "num" : null, "aria-sort": on ? (sort.order === "desc" ? "descending" : "ascending") : null }, button);
  }));
  const now = Date.now() * 1000;
  const body = h("tbody", null, sessions.map((s) => {
    const href = "#/session/" + encodeURIComponent(s.id);
    const start = isoToUs(s.start_time);
    const row = h("tr", { dataset: { session: s.id } },
      h("td", { class: "name" }, h("a", { href, text: s.name || s.id }), s.name ? h("span", { class: "id", text: s.id }) : null,
        s.conversation?.first_user_message ? h("span", { class: "excerpt", title: "first user message", text: "“" + s.conversation.first_user_message + "”" }) : null),
      h("td", { "data-label": "status" }, h("span", { class: ["status", s.status], text: s.status }),
        s.error_count ? h("span", { class: "errbadge", text: " " + s.error_count + " err" }) : null),
      h("td", { "data-label": "user", class: "wrap", text: s.user_id || "–" }),
      h("td", { "data-label": "started", class: "nowrap", title: fmtTime(start), text: fmtAgo(start, now) }),
      h("td", { "data-label": "messages", class: "num", title: figuresTitle(s.conversation),
                text: s.conversation ? fmtInt(s.conversation.message_count) : "–" }),
      h("td", { "data-label": "duration", class: "num", text: fmtMs(s.duration_ms) }),
      h("td", { "data-label": "traces", class: "num", text: fmtInt(s.trace_count) }),
      h("td", { "data-label": "spans", class: "num", text: fmtInt(s.span_count) }),
      h("td", { "data-label": "tokens", class: "num", title: `${fmtInt(s.input_tokens)} in / ${fmtInt(s.output_tokens)} out`,
                text: fmtTokens(s.total_tokens) }),
      h("td", { "data-label": "cost", class: "num", title: "$" + (s.cost_usd || 0), text: costText(s) }));
    row.addEventListener("click", (event) => {
      if (event.target.closest("a, button") || getSelection()?.toString()) return;
      location.hash = href;
    });
    return row;
  }));
  return h("div", { class: "table" }, h("table", { class: "sessions" }, h("thead", null, head), body));
}

export class ListView {
  constructor(app) {
    this.app = app;
    this.controller = new AbortController();
    this.timer = null;
  }

  destroy() {
    this.controller.abort();
    clearTimeout(this.timer);
  }

  async show(params) {
    this.params = params;
    document.title = "Sessions · otel-sessions";
    const supported = (await listParameters().catch(() => null)) || BASE_PARAMS;
    if (this.controller.signal.aborted) return;
    this.supported = supported;
    this.results = h("div", { class: "results" }, h("p", { class: "muted", text: "loading…" }));
    this.liveToggle = this.live();
    fill(this.app, this.form(), h("div", { class: "toolbar" }, this.liveToggle, h("span", { class: "grow" }),
      h("span", { class: "legend", text: COST_LEGEND })), this.results);
    await this.refresh();
  }

  go(next) {
    next.delete("offset");
    for (const [key, value] of [...next]) if (!value) next.delete(key);
    location.hash = "#/sessions" + (next.toString() ? "?" + queryString(next) : "");
  }

  form() {
    const p = this.params;
    const supported = this.supported;
    const field = (name, label, input) => h("label", { class: "field" }, label, input);
    const statuses = new Set((p.get("status") || "").split(",").filter(Boolean));
    const statusChips = h("div", { class: "chips", role: "group", "aria-label": "status" },
      h("span", { class: "muted small", text: "status" }),
      STATUSES.map((s) => h("label", { class: ["chip", statuses.has(s) && "on"] },
        h("input", { type: "checkbox", name: "status", value: s, checked: statuses.has(s) }), s)));
    const metadata = [...p].filter(([k]) => k.startsWith("metadata."));
    const metaInput = h("input", { name: "metadata_new", placeholder: "key=value", "aria-label": "metadata key=value",
                                   size: 14 });
    const metaChips = h("div", { class: "chips", "aria-label": "metadata" },
      h("span", { class: "muted small", text: "metadata" }),
      metadata.map(([k, v]) => {
        const remove = h("button", { type: "button", class: "link", title: "remove", "aria-label": "remove " + k, text: "×" });
        remove.addEventListener("click", () => { const next = new URLSearchParams(p); next.delete(k); this.go(next); });
        return h("span", { class: "chip on", dataset: { key: k } }, `${k.slice(9)}=${v}`, remove);
      }),
      metaInput);
    const since = p.get("since") || (p.get("start_time") || p.get("end_time") ? "custom" : "");
    const sinceSelect = h("select", { name: "since", "aria-label": "started" },
      SINCE.map(([value, label]) => h("option", { value, selected: value === since, text: label })));
    const from = h("input", { type: "datetime-local", name: "from", value: localInput(p.get("start_time")), "aria-label": "started after" });
    const to = h("input", { type: "datetime-local", name: "to", value: localInput(p.get("end_time")), "aria-label": "started before" });
    const custom = h("div", { class: ["chips", since !== "custom" && "hidden"] }, from, h("span", { text: "–" }), to);
    const sortBy = p.get("sort_by") || "start";
    // on a phone the filters past search and status fold away unless one is set
    const moreSet = [...p.keys()].some((k) => k !== "status" && k !== "q" && k !== "offset" && k !== "limit");
    const more = h("button", { type: "button", class: "secondary narrow-only", "aria-expanded": String(moreSet),
                               text: moreSet ? "fewer filters" : "more filters" });
    more.addEventListener("click", () => {
      const open = form.querySelector(".more-filters").classList.toggle("open");
      more.setAttribute("aria-expanded", String(open));
      more.textContent = open ? "fewer filters" : "more filters";
    });
    const form = h("form", { class: "filters", role: "search" },
      supported.has("q") ? h("div", { class: "wide search" },
        h("input", { type: "search", name: "q", value: p.get("q") || "", placeholder: "search names, ids, users, models, agents, tools…",
                     "aria-label": "search" })) : null,
      h("div", { class: "wide" }, statusChips),
      h("div", { class: ["more-filters", moreSet && "open"] },
        TEXT_FILTERS.filter(([name]) => supported.has(name)).map(([name, label]) =>
          field(name, label, h("input", { name, value: p.get(name) || "", "aria-label": label }))),
        field("since", "started", sinceSelect),
        field("sort_by", "sort by", h("select", { name: "sort_by" },
          SORTS.map(([value, label]) => h("option", { value, selected: value === sortBy, text: label })))),
        field("sort_order", "order", h("select", { name: "sort_order" },
          [["desc", "descending"], ["asc", "ascending"]].map(([value, label]) =>
            h("option", { value, selected: value === (p.get("sort_order") || "desc"), text: label })))),
        h("div", { class: "wide" }, metaChips),
        h("div", { class: "wide" }, custom)),
      h("div", { class: "wide toolbar" },
        h("button", { type: "submit", text: "Search" }),
        more,
        h("a", { href: "#/sessions", text: "clear filters" }),
        h("span", { class: "problem-slot" })));
    const submit = () => {
      const next = new URLSearchParams();
      const data = new FormData(form);
      const chosen = data.getAll("status");
      if (chosen.length) next.set("status", chosen.join(","));
      for (const [name] of TEXT_FILTERS) if (data.get(name)) next.set(name, String(data.get(name)).trim());
      if (data.get("q")) next.set("q", String(data.get("q")).trim());
      for (const [k, v] of metadata) next.set(k, v);
      const extra = String(data.get("metadata_new") || "").trim();
      if (extra) {
        const eq = extra.indexOf("=");
        if (eq <= 0) { metaInput.setCustomValidity("write key=value"); metaInput.reportValidity(); return; }
        next.set("metadata." + extra.slice(0, eq).trim(), extra.slice(eq + 1).trim());
      }
      const s = data.get("since");
      if (s === "custom") {
        if (from.value) next.set("start_time", new Date(from.value).toISOString());
        if (to.value) next.set("end_time", new Date(to.value).toISOString());
      } else if (s) {
        next.set("since", s);
      }
      if (data.get("sort_by") !== "start") next.set("sort_by", data.get("sort_by"));
      if (data.get("sort_order") !== "desc") next.set("sort_order", data.get("sort_order"));
      if (p.get("limit")) next.set("limit", p.get("limit"));
      this.go(next);
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
    metaInput.addEventListener("input", () => metaInput.setCustomValidity(""));
    for (const box of form.querySelectorAll("input[name=status]")) box.addEventListener("change", submit);
    for (const select of form.querySelectorAll("select")) select.addEventListener("change", () => {
      if (select === sinceSelect && select.value === "custom") { custom.classList.remove("hidden"); from.focus(); return; }
      submit();
    });
    this.formEl = form;
    return form;
  }

  live() {
    const on = sessionStorage.getItem(LIVE_KEY) === "1";
    const toggle = h("button", { type: "button", class: ["live", "ghost", on && "on"], "aria-pressed": String(on),
                                 title: "re-read the list every 5 s" }, h("span", { class: "dot" }), h("span", { class: "label", text: on ? "live" : "live: off" }));
    toggle.addEventListener("click", () => {
      const next = toggle.getAttribute("aria-pressed") !== "true";
      sessionStorage.setItem(LIVE_KEY, next ? "1" : "0");
      toggle.setAttribute("aria-pressed", String(next));
      toggle.classList.toggle("on", next);
      toggle.querySelector(".label").textContent = next ? "live" : "live: off";
      clearTimeout(this.timer);
      if (next) this.refresh();
    });
    return toggle;
  }

  async refresh() {
    clearTimeout(this.timer);
    const p = this.params;
    const limit = Number(p.get("limit")) || 50;
    const offset = Number(p.get("offset")) || 0;
    const { query, ignored } = apiQuery(p, this.supported);
    query.set("limit", limit);
    query.set("offset", offset);
    let body;
    try {
      body = await api("/v1/sessions?" + query, { signal: this.controller.signal });
    } catch (error) {
      if (this.controller.signal.aborted) return;
      this.showProblem(error);
      return;
    }
    if (this.controller.signal.aborted) return;
    const sort = { by: p.get("sort_by") || "start", order: p.get("sort_order") || "desc",
                   onSort: (by, order) => { const next = new URLSearchParams(p); next.set("sort_by", by); next.set("sort_order", order); this.go(next); } };
    const page = (newOffset) => { const next = new URLSearchParams(p); next.set("offset", Math.max(0, newOffset));
      location.hash = "#/sessions?" + queryString(next); };
    const prev = h("button", { type: "button", class: "secondary", text: "‹ previous", disabled: offset === 0 });
    const next = h("button", { type: "button", class: "secondary", text: "next ›", disabled: offset + limit >= body.total });
    prev.addEventListener("click", () => page(offset - limit));
    next.addEventListener("click", () => page(offset + limit));
    const size = h("select", { "aria-label": "page size" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === limit, text: n + " a page" })));
    size.addEventListener("change", () => { const n = new URLSearchParams(p); n.set("limit", size.value); this.go(n); });
    const count = body.total ? `${offset + 1}–${offset + body.data.length} of ${fmtInt(body.total)}` : "no sessions";
    fill(this.results,
      ignored.length ? h("p", { class: "notice", text: `This service does not filter by ${ignored.join(", ")}: ignored.` }) : null,
      body.partial ? h("p", { class: "notice", text: "Partial: a filter was applied to a bounded set of candidates; more sessions may match." }) : null,
      body.data.length ? sessionsTable(body.data, sort)
        : h("div", { class: "notice" }, "No sessions match. ", h("span", { class: "muted", text: "Send a demo conversation with " }),
          h("code", { text: "otel-sessions demo" }), "."),
      h("div", { class: "pager" }, prev, h("span", { class: "muted count", text: count }), next, size,
        h("span", { class: "muted small", text: "read " + new Date().toLocaleTimeString() })));
    if (this.liveToggle.getAttribute("aria-pressed") === "true") this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  showProblem(error) {
    const parameter = error instanceof ApiError ? error.parameter : null;
    if (parameter) this.formEl?.querySelector(`[name="${CSS.escape(parameter)}"]`)?.setAttribute("aria-invalid", "true");
    fill(this.results, h("p", { class: "problem" }, parameter ? h("b", { text: parameter + ": " }) : null, String(error.message || error)));
    if (this.liveToggle.getAttribute("aria-pressed") === "true") this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }
}
