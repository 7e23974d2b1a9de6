// The session page: a header of summary cards and tabs (Conversation, Timeline, Agents, Logs).
// Data: GET /v1/sessions/{id} (summary, traces), /spans (OTLP/JSON), /usage (per-span tokens and
// cost), and when the service has them /messages and /logs (a 404 hides what needs them).
// The live toggle follows /tail (server-sent events) and re-reads the session on each write.

import { api, follow, optional } from "./api.js";
import { renderAgents } from "./agents.js";
import { renderConversation } from "./conversation.js";
import { copyButton, fill, fmtAgo, fmtCost, fmtInt, fmtMs, fmtTime, h, isoToUs, sessionTraceId } from "./dom.js";
import { agentChip, enc } from "./links.js";
import { renderLogs } from "./logs.js";
import { flatten, index } from "./otlp.js";
import { traceViewerLink } from "./settings.js";
import { Timeline } from "./timeline.js";

const TABS = [["conversation", "Conversation"], ["timeline", "Timeline"], ["agents", "Agents"], ["logs", "Logs"]];
const LIVE_KEY = "otel-sessions.live-session";
const MESSAGE_PAGE = 500;
const LOG_PAGE = 1000;

/** Cards of the conversation figures: messages, response latency and first token, tool calls. */
function conversationCards(f) {
  if (!f) return [];
  const cards = [card("messages", fmtInt(f.message_count), `${f.user_messages} user · ${f.assistant_messages} assistant`)];
  if (f.response_latency_ms != null) {
    cards.push(card("model latency", fmtMs(f.response_latency_ms),
      `mean of ${f.model_calls} calls` + (f.time_to_first_token_ms != null ? " · first token " + fmtMs(f.time_to_first_token_ms) : "")));
  }
  if (f.tool_calls) {
    cards.push(card("tool calls", fmtInt(f.tool_calls), `mean ${fmtMs(f.tool_latency_ms)}` + (f.tool_errors ? ` · ${f.tool_errors} failed` : ""),
                    f.tool_errors ? "bad" : null));
  }
  return cards;
}

function card(label, value, sub, extra) {
  return h("div", { class: ["card", ...[extra].flat()], dataset: { card: label } }, h("span", { class: "label", text: label }), h("b", { text: value }),
    sub ? h("span", { class: "sub", text: sub }) : null);
}

export class SessionView {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.controller = new AbortController();
    this.tab = "conversation";
    this.params = new URLSearchParams();
    this.openKeys = new Set(); // expanded tool calls etc., kept across live re-reads
    this.data = null;
    this.tail = null;
    this.reloadTimer = null;
    this.load();
  }

  destroy() {
    this.controller.abort();
    this.tail?.abort();
    clearTimeout(this.reloadTimer);
  }

  show(tab, params) {
    this.tab = TABS.some(([t]) => t === tab) ? tab : "conversation";
    this.params = params;
    if (this.data) this.renderTab();
  }

  async fetchAll() {
    const base = "/v1/sessions/" + enc(this.id);
    const signal = this.controller.signal;
    const soft = (promise) => promise.catch((error) => (signal.aborted ? null : { error }));
    const [summary, spans, usage, messages, logs] = await Promise.all([
      api(base, { signal }), api(base + "/spans", { signal }),
      soft(optional(base + "/usage", { signal, route: "/v1/sessions/{session_id}/usage" })),
      soft(optional(`${base}/messages?limit=${MESSAGE_PAGE}`, { signal, route: "/v1/sessions/{session_id}/messages" })),
      soft(optional(`${base}/logs?limit=${LOG_PAGE}`, { signal, route: "/v1/sessions/{session_id}/logs" })),
    ]);
    const usageByKey = new Map();
    for (const u of usage?.data || []) usageByKey.set(u.trace_id + ":" + u.span_id, u);
    return { summary, index: index(flatten(spans)), usage: usage && !usage.error ? usageByKey : null, messages, logs };
  }

  async load() {
    fill(this.app, h("p", { class: "muted", text: "loading session…" }));
    try {
      this.data = await this.fetchAll();
    } catch (error) {
      if (this.controller.signal.aborted) return;
      fill(this.app, h("p", { class: "crumbs" }, h("a", { href: "#/sessions", text: "‹ sessions" })),
        h("p", { class: "problem", text: error.status === 404 ? `No session ${this.id} (it may have expired).` : String(error.message || error) }));
      return;
    }
    if (this.controller.signal.aborted) return;
    this.render();
    if (sessionStorage.getItem(LIVE_KEY) === "1") this.startLive();
  }

  async reload() {
    try {
      const data = await this.fetchAll();
      if (this.controller.signal.aborted) return;
      this.data = data;
      const y = window.scrollY;
      this.render();
      window.scrollTo(0, y);
    } catch (error) {
      if (!this.controller.signal.aborted) console.warn("re-reading the session failed:", error);
    }
  }

  render() {
    const s = this.data.summary;
    document.title = (s.name || s.id) + " · otel-sessions";
    this.tabsEl = h("nav", { class: "tabs", "aria-label": "session views" });
    this.liveEl = h("span", { class: "live-slot" });
    this.body = h("div", { class: "tab-body" });
    this.timeline = null;
    fill(this.app, this.header(s), this.tabsEl, this.body);
    this.renderTab();
  }

  header(s) {
    const start = isoToUs(s.start_time);
    const cached = (s.cache_read_tokens || 0) + (s.cache_write_tokens || 0);
    const tokenSub = [`${fmtInt(s.input_tokens)} in · ${fmtInt(s.output_tokens)} out`,
      cached ? `cached ${fmtInt(s.cache_read_tokens || 0)} read · ${fmtInt(s.cache_write_tokens || 0)} written` : null,
      s.reasoning_tokens ? `${fmtInt(s.reasoning_tokens)} reasoning` : null].filter(Boolean).join(" · ");
    const traceId = sessionTraceId(s.id);
    const viewer = traceViewerLink(traceId);
    const metadata = Object.entries(s.metadata || {});
    return h("section", { class: "session-head" },
      h("div", { class: "crumbs" }, h("a", { href: "#/sessions", text: "‹ sessions" }),
        s.thread_id ? [h("span", { class: "muted", text: "·" }), h("a", { href: "#/thread/" + enc(s.thread_id), text: "thread " + s.thread_id })] : null,
        s.previous_id ? [h("span", { class: "muted", text: "·" }), h("a", { href: "#/session/" + enc(s.previous_id), text: "previous session" })] : null),
      h("div", { class: "title" }, h("h2", { text: s.name || s.id }), h("span", { class: ["status", s.status], text: s.status }),
        s.truncated ? h("span", { class: "notice small", text: `${fmtInt(s.spans_dropped)} oldest spans dropped (span limit)` }) : null,
        this.liveEl),
      h("p", { class: "ids" }, h("span", null, "session ", h("code", { text: s.id }), " ", copyButton(s.id)),
        h("span", { text: fmtTime(start) })),
      h("div", { class: "cards" },
        card("status", s.status, s.last_activity ? "last received " + fmtAgo(isoToUs(s.last_activity)) : null),
        card("duration", fmtMs(s.duration_ms)),
        card("spans", fmtInt(s.span_count)),
        ...conversationCards(s.conversation),
        card("traces", fmtInt(s.trace_count)),
        card("errors", fmtInt(s.error_count), s.error_log_count ? `spans · ${fmtInt(s.error_log_count)} error logs` : "spans",
             s.error_count || s.error_log_count ? "bad" : null),
        s.log_count ? card("logs", fmtInt(s.log_count), s.first_error_log_message || null, s.error_log_count ? ["bad", "wide"] : null) : null,
        card("tokens", fmtInt(s.total_tokens), tokenSub, "wide"),
        card("cost", s.cost_usd || s.cost_estimated ? fmtCost(s.cost_usd) + (s.cost_estimated ? "*" : "") : "–",
             s.cost_estimated ? "* estimated from the price table" : s.cost_usd ? "as reported by the spans" : "no cost recorded"),
        card("models", (s.models || []).join(", ") || "–", null, ["text", (s.models || []).length > 1 && "wide"]),
        h("div", { class: "card text", dataset: { card: "agents" } }, h("span", { class: "label", text: "agents" }),
          (s.agents || []).length ? h("b", null, s.agents.map((a) => [agentChip(a), " "])) : h("b", { text: "–" })),
        h("div", { class: "card text", dataset: { card: "user" } }, h("span", { class: "label", text: "user" }),
          s.user_id ? h("b", null, h("a", { href: "#/sessions?user_id=" + enc(s.user_id), text: s.user_id })) : h("b", { text: "–" })),
        h("div", { class: "card text wide", dataset: { card: "thread" } }, h("span", { class: "label", text: "thread" }),
          s.thread_id ? h("b", null, h("a", { href: "#/thread/" + enc(s.thread_id), text: s.thread_id })) : h("b", { text: "–" }))),
      (s.tools || []).length || (s.services || []).length || metadata.length ? h("div", { class: "meta small" },
        (s.services || []).map((x) => h("a", { class: "chip", href: "#/sessions?service=" + enc(x), text: "service " + x })),
        (s.environments || []).map((x) => h("a", { class: "chip", href: "#/sessions?environment=" + enc(x), text: "env " + x })),
        (s.tools || []).map((x) => h("span", { class: "chip", text: "tool " + x })),
        metadata.map(([k, v]) => h("a", { class: "chip", href: `#/sessions?${enc("metadata." + k)}=${enc(v)}`, title: "sessions with this metadata",
                                          text: `${k}=${v}` }))) : null,
      h("div", { class: "jaeger", "aria-label": "Jaeger" },
        h("span", { class: "muted", text: "session trace (Jaeger API)" }),
        h("code", { class: "trace-id", text: traceId }), copyButton(traceId),
        h("a", { href: "/api/sessions/" + enc(s.id) + "/trace", target: "_blank", rel: "noopener", text: "/api/sessions/…/trace" }),
        viewer ? h("a", { href: viewer, target: "_blank", rel: "noopener noreferrer", text: "open in trace viewer ↗" })
          : h("span", { class: "muted small", text: "(set a Jaeger UI URL in Settings to link to it)" })));
  }

  renderTabs() {
    const d = this.data;
    const counts = {
      conversation: Array.isArray(d.messages?.data) ? d.messages.data.length + (d.messages.truncated ? "+" : "") : null,
      timeline: d.index.spans.length,
      agents: new Set(d.index.spans.map((x) => x.attrs["gen_ai.agent.name"]).filter(Boolean)).size || null,
      logs: Array.isArray(d.logs?.data) ? (d.logs.total ?? d.logs.data.length) : null,
    };
    fill(this.liveEl, this.liveButton());
    fill(this.tabsEl,
      TABS.filter(([t]) => t !== "logs" || d.logs !== null).map(([t, label]) =>
        h("a", { href: `#/session/${enc(this.id)}/${t}`, class: t === this.tab ? "on" : null, "aria-current": t === this.tab ? "page" : null,
                 dataset: { tab: t } }, label, counts[t] !== null ? h("span", { class: "count", text: String(counts[t]) }) : null)));
  }

  liveButton() {
    const live = h("button", { type: "button", class: ["live", "ghost", this.tail && "on"], "aria-pressed": String(Boolean(this.tail)),
                               title: "follow new spans as they are stored (GET /v1/sessions/{id}/tail)" },
      h("span", { class: "dot" }), h("span", { text: this.tail ? "live" : "live: off" }));
    live.addEventListener("click", () => {
      if (this.tail) this.stopLive(); else this.startLive();
      sessionStorage.setItem(LIVE_KEY, this.tail ? "1" : "0");
    });
    return live;
  }

  renderTab() {
    if (this.tab === "logs" && this.data.logs === null) this.tab = "conversation";
    this.renderTabs();
    const ctx = { sessionId: this.id, data: this.data, openKeys: this.openKeys };
    if (this.tab === "timeline") {
      if (!this.timeline) {
        this.timeline = new Timeline(ctx, this.controller.signal);
        fill(this.body, this.timeline.el);
      }
      this.timeline.select(this.params.get("trace"), this.params.get("span"));
      return;
    }
    this.timeline = null;
    if (this.tab === "agents") fill(this.body, renderAgents(ctx));
    else if (this.tab === "logs") fill(this.body, renderLogs(ctx));
    else fill(this.body, renderConversation(ctx));
  }

  startLive() {
    this.tail = new AbortController();
    const tail = this.tail;
    const onEvent = () => {
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => this.reload(), 700);
    };
    follow(`/v1/sessions/${enc(this.id)}/tail`, onEvent, tail.signal)
      .catch((error) => { if (!tail.signal.aborted) console.warn("live tail ended:", error); })
      .finally(() => { if (this.tail === tail) { this.tail = null; if (this.data) this.renderTabs(); } });
    if (this.data) this.renderTabs();
  }

  stopLive() {
    this.tail?.abort();
    this.tail = null;
    this.renderTabs();
  }
}
