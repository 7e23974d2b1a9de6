// The thread page: the thread's sessions in start order with their totals, and the thread's
// transcript (GET /v1/threads/{id}/messages, when the service has it).

import { api, optional } from "./api.js";
import { renderConversation } from "./conversation.js";
import { copyButton, fill, fmtCost, fmtInt, fmtMs, fmtTime, h, isoToUs } from "./dom.js";
import { enc } from "./links.js";
import { COST_LEGEND, sessionsTable } from "./list.js";

const MESSAGE_PAGE = 500;

function card(label, value, sub, extra) {
  return h("div", { class: ["card", extra], dataset: { card: label } }, h("span", { class: "label", text: label }), h("b", { text: value }),
    sub ? h("span", { class: "sub", text: sub }) : null);
}

export class ThreadView {
  constructor(app, id) {
    this.app = app;
    this.id = id;
    this.controller = new AbortController();
    this.openKeys = new Set();
    this.load();
  }

  destroy() {
    this.controller.abort();
  }

  show() {}

  async load() {
    const signal = this.controller.signal;
    document.title = "Thread " + this.id + " · otel-sessions";
    fill(this.app, h("p", { class: "muted", text: "loading thread…" }));
    let thread, messages;
    try {
      [thread, messages] = await Promise.all([
        api(`/v1/threads/${enc(this.id)}?limit=500`, { signal }),
        optional(`/v1/threads/${enc(this.id)}/messages?limit=${MESSAGE_PAGE}`, { signal, route: "/v1/threads/{thread_id}/messages" }).catch((error) => ({ error })),
      ]);
    } catch (error) {
      if (signal.aborted) return;
      fill(this.app, h("p", { class: "crumbs" }, h("a", { href: "#/sessions", text: "‹ sessions" })),
        h("p", { class: "problem", text: error.status === 404 ? `No thread ${this.id} (its sessions may have expired).` : String(error.message || error) }));
      return;
    }
    if (signal.aborted) return;
    const sessions = thread.data;
    const sum = (key) => sessions.reduce((n, s) => n + (Number(s[key]) || 0), 0);
    const starts = sessions.map((s) => isoToUs(s.start_time)).filter((x) => x !== null);
    const ends = sessions.map((s) => isoToUs(s.end_time)).filter((x) => x !== null);
    const first = starts.length ? Math.min(...starts) : null;
    const last = ends.length ? Math.max(...ends) : null;
    const users = [...new Set(sessions.map((s) => s.user_id).filter(Boolean))];
    const estimated = sessions.some((s) => s.cost_estimated);
    const names = new Map(sessions.map((s) => [s.id, s.name || s.id]));
    const transcript = messages === null
      ? h("p", { class: "notice", text: "This service has no thread transcript route (GET /v1/threads/{id}/messages); open a session for its conversation." })
      : renderConversation({ sessionId: null, sessionNames: names, openKeys: this.openKeys,
                             data: { messages, index: null } });
    fill(this.app,
      h("div", { class: "crumbs" }, h("a", { href: "#/sessions", text: "‹ sessions" }), h("span", { class: "muted", text: "·" }),
        h("a", { href: "#/sessions?thread_id=" + enc(this.id), text: "as a filtered list" })),
      h("div", { class: "title" }, h("h2", { text: "Thread " + this.id })),
      h("p", { class: "ids" }, h("span", null, "thread ", h("code", { text: this.id }), " ", copyButton(this.id)),
        first !== null ? h("span", { text: fmtTime(first) + " – " + fmtTime(last) }) : null),
      h("div", { class: "cards" },
        card("sessions", fmtInt(thread.total) + (thread.partial ? "+" : "")),
        card("span of time", first !== null && last !== null ? fmtMs((last - first) / 1000) : "–"),
        card("busy", fmtMs(sum("duration_ms")), "sum of session durations"),
        card("traces", fmtInt(sum("trace_count"))),
        card("spans", fmtInt(sum("span_count"))),
        card("errors", fmtInt(sum("error_count")), null, sum("error_count") ? "bad" : null),
        card("tokens", fmtInt(sum("total_tokens")), `${fmtInt(sum("input_tokens"))} in · ${fmtInt(sum("output_tokens"))} out`, "wide"),
        card("cost", fmtCost(sum("cost_usd")) + (estimated ? "*" : ""), estimated ? "* estimated from the price table" : null),
        h("div", { class: "card" }, h("span", { class: "label", text: users.length > 1 ? "users" : "user" }),
          users.length ? h("b", null, users.map((u, i) => [i ? ", " : "", h("a", { href: "#/sessions?user_id=" + enc(u), text: u })])) : h("b", { text: "–" }))),
      h("h3", { text: "Sessions, oldest first" }),
      sessionsTable(sessions, null),
      h("p", { class: "legend", text: COST_LEGEND }),
      thread.total > sessions.length ? h("p", { class: "notice", text: `Showing the first ${sessions.length} sessions.` }) : null,
      h("h3", { style: { marginTop: "18px" }, text: "Transcript" }),
      h("div", { class: "thread-transcript" }, transcript));
  }
}
