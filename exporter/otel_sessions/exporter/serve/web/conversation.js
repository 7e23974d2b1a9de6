// The Conversation tab: the transcript (GET /v1/sessions/{id}/messages, or a thread's) as chat
// bubbles by role and agent, with what the spans add: tool calls no message shows, and every
// failed span, inline in red with its error. Without the messages route, the spans alone tell
// what they can (tool calls, errors, the input and output of each turn).

import { fill, fmtClock, fmtCost, fmtInt, fmtMs, h, isoToUs, pretty } from "./dom.js";
import { errorText, modelOf, toolName } from "./otlp.js";
import { agentChip, enc, spanHash } from "./links.js";

const MEDIA = new Set(["image", "audio", "video", "document", "file"]);
const IO_IN = ["input.value", "gen_ai.input", "traceloop.entity.input"];
const IO_OUT = ["output.value", "gen_ai.output", "traceloop.entity.output"];

/** A <details> that remembers being opened (across live re-reads) under ``key``. */
function remembered(openKeys, key, summary, ...body) {
  const el = h("details", { open: openKeys.has(key), dataset: { key } }, h("summary", null, summary), ...body);
  el.addEventListener("toggle", () => { if (el.open) openKeys.add(key); else openKeys.delete(key); });
  return el;
}

function spanLink(sessionId, traceId, spanId, label = "span ↗") {
  if (!spanId) return null;
  return h("a", { class: "spanlink small", href: spanHash(sessionId, traceId, spanId), title: "open the span " + spanId, text: label });
}

function part(p, openKeys, key) {
  if (!p || typeof p !== "object") return h("div", { class: "text", text: String(p ?? "") });
  if (p.type === "text") return h("div", { class: "text", text: p.text ?? "" });
  if (p.type === "reasoning" || p.type === "thinking") {
    return remembered(openKeys, key + ":r", h("span", { class: "muted", text: "reasoning" }), h("div", { class: "text muted", text: p.text ?? pretty(p) }));
  }
  if (MEDIA.has(p.type)) {
    const what = [p.type, p.mime_type, p.uri || p.file_id || (p.size ? `${fmtInt(p.size)} bytes left out` : null)].filter(Boolean).join(" · ");
    const img = p.type === "image" && p.data && /^image\/(png|jpeg|gif|webp)$/.test(p.mime_type || "")
      ? h("img", { src: `data:${p.mime_type};base64,${p.data}`, alt: "image", style: { maxWidth: "100%", maxHeight: "240px" } }) : null;
    return h("div", { class: "small muted" }, "[", what, "]", img);
  }
  if (p.type === "tool_call_response" || p.type === "tool_result") {
    return h("pre", { text: pretty(p.response ?? p.result ?? p.content ?? p) });
  }
  return h("pre", { class: "small", text: pretty(p) });
}

function contentOf(m, openKeys, key) {
  const parts = Array.isArray(m.content) ? m.content : m.content ? [{ type: "text", text: String(m.content) }] : [];
  return parts.map((p, i) => part(p, openKeys, key + ":" + i));
}

function failureLine(span) {
  return h("div", { class: "errmsg", text: "✖ " + errorText(span) });
}

function toolCallBlock(call, ctx, key, toolSpan) {
  const failed = toolSpan?.error;
  const title = h("span", null, h("span", { class: "kind tool", text: "tool" }), h("b", { text: call.name || "tool call" }),
    call.id ? h("span", { class: "muted small", text: " " + call.id }) : null,
    toolSpan ? h("span", { class: "muted small", text: " · " + fmtMs((toolSpan.end - toolSpan.start) / 1000) }) : null,
    toolSpan ? spanLink(ctx.sessionId, toolSpan.traceId, toolSpan.spanId) : null);
  const result = toolSpan?.attrs["gen_ai.tool.call.result"];
  return h("div", { class: ["call", failed && "failed"] },
    remembered(ctx.openKeys, key, title,
      h("div", { class: "small muted", text: "arguments" }), h("pre", { text: pretty(call.arguments ?? "") }),
      result !== undefined ? [h("div", { class: "small muted", text: "result" }), h("pre", { text: pretty(result) })] : null),
    failed ? failureLine(toolSpan) : null);
}

function messageEl(m, ctx, key, toolSpans, callNames) {
  const role = ["system", "user", "assistant", "tool"].includes(m.role) ? m.role : "user";
  const sessionId = m.session_id || ctx.sessionId;
  const head = h("div", { class: "head" },
    h("span", { class: "role", text: m.role === role ? role : `${role} (${m.role})` }),
    m.name && m.name !== m.agent ? h("span", { text: m.name }) : null,
    agentChip(m.agent),
    m.model ? h("span", { text: m.model }) : null,
    m.time ? h("span", { title: m.time, text: fmtClock(isoToUs(m.time)) }) : null,
    m.raw ? h("span", { class: "error", title: "the recorded content did not parse; shown as recorded", text: "unparsed" }) : null,
    m.redacted ? h("span", { class: "muted", title: "the service redacted this content on ingest (--redact-attributes)", text: "redacted" }) : null,
    spanLink(sessionId, m.trace_id, m.span_id));
  const body = [];
  if (role === "system") {
    body.push(remembered(ctx.openKeys, key + ":sys", h("span", { class: "muted", text: "system instructions" }), contentOf(m, ctx.openKeys, key)));
  } else if (role === "tool") {
    const name = callNames.get(m.tool_call_id) || m.name || "tool";
    const toolSpan = toolSpans.get(m.tool_call_id);
    // a failure shows once: on the assistant's call when the transcript has it, else here
    const failed = toolSpan?.error && !callNames.has(m.tool_call_id);
    body.push(h("div", { class: ["call", failed && "failed"] },
      remembered(ctx.openKeys, key + ":res", h("span", null, "result of ", h("b", { text: name }),
        m.tool_call_id ? h("span", { class: "muted small", text: " " + m.tool_call_id }) : null), contentOf(m, ctx.openKeys, key)),
      failed ? failureLine(toolSpan) : null));
  } else {
    body.push(contentOf(m, ctx.openKeys, key));
  }
  (m.tool_calls || []).forEach((call, i) => body.push(toolCallBlock(call, { ...ctx, sessionId }, `${key}:call:${call.id || i}`,
    call.id ? toolSpans.get(call.id) : null)));
  const foot = [m.usage ? `${fmtInt(m.usage.input_tokens)} in · ${fmtInt(m.usage.output_tokens)} out` : null,
    m.finish_reason ? "finish: " + m.finish_reason : null].filter(Boolean).join(" · ");
  return h("div", { class: ["msg", role], dataset: { role } }, head, body, foot ? h("div", { class: "foot", text: foot }) : null);
}

function toolItem(span, ctx) {
  const args = span.attrs["gen_ai.tool.call.arguments"] ?? span.attrs["input.value"];
  const result = span.attrs["gen_ai.tool.call.result"] ?? span.attrs["output.value"];
  const title = h("span", null, h("span", { class: "kind tool", text: "tool" }), h("b", { text: toolName(span) }),
    h("span", { class: "muted small", text: " · " + fmtMs((span.end - span.start) / 1000) + " · " + fmtClock(span.start) }),
    spanLink(ctx.sessionId, span.traceId, span.spanId));
  return h("div", { class: "item tool", dataset: { span: span.spanId } },
    h("div", { class: ["call", span.error && "failed"] },
      remembered(ctx.openKeys, "tool:" + span.key, title,
        args !== undefined ? [h("div", { class: "small muted", text: "arguments" }), h("pre", { text: pretty(args) })] : null,
        result !== undefined ? [h("div", { class: "small muted", text: "result" }), h("pre", { text: pretty(result) })] : null,
        args === undefined && result === undefined ? h("div", { class: "muted small", text: "no arguments or result recorded" }) : null),
      span.error ? failureLine(span) : null));
}

function modelItem(span, ctx, agent) {
  const u = ctx.data.usage?.get(span.key);
  const a = span.attrs;
  const finish = a["gen_ai.response.finish_reasons"];
  const figures = [u ? `${fmtInt(u.input_tokens)} in · ${fmtInt(u.output_tokens)} out` : null,
    u?.cost_usd ? fmtCost(u.cost_usd) + (u.cost_estimated ? "*" : "") : null,
    finish ? "finish: " + [finish].flat().join(", ") : null, fmtMs((span.end - span.start) / 1000)].filter(Boolean).join(" · ");
  return h("div", { class: "msg assistant model", dataset: { role: "model-call" } },
    h("div", { class: "head" }, h("span", { class: "kind llm", text: "llm" }), agentChip(agent),
      h("span", { text: modelOf(span) || span.name }), h("span", { text: figures }), spanLink(ctx.sessionId, span.traceId, span.spanId)));
}

function errorItem(span, ctx, agent) {
  return h("div", { class: "item", dataset: { span: span.spanId } },
    h("div", { class: "failure", role: "alert" },
      h("b", { text: "✖ " + span.name + " failed: " }), h("span", { class: "errmsg", text: errorText(span) }), " ",
      agentChip(agent), h("span", { class: "muted small", text: " " + fmtClock(span.end) + " " }),
      spanLink(ctx.sessionId, span.traceId, span.spanId)));
}

function ioItem(span, value, direction, ctx, agent) {
  const role = direction === "input" ? "user" : "assistant";
  return h("div", { class: ["msg", role], dataset: { role } },
    h("div", { class: "head" }, h("span", { class: "role", text: direction }), agentChip(agent),
      h("span", { text: fmtClock(direction === "input" ? span.start : span.end) }), spanLink(ctx.sessionId, span.traceId, span.spanId)),
    h("div", { class: "text", text: pretty(value) }));
}

/**
 * The conversation of ``ctx.data``: {messages: {data, truncated} | null (no route) | {error},
 * index (spans, optional)}. ``ctx.sessionNames`` (a thread) marks where each session starts.
 */
export function renderConversation(ctx) {
  const { messages, index } = ctx.data;
  const list = Array.isArray(messages?.data) ? messages.data : [];
  const spans = index ? index.spans : [];
  const items = [];
  let seq = 0;
  const covered = new Set();
  const callNames = new Map();
  for (const m of list) {
    for (const call of m.tool_calls || []) if (call.id) { covered.add(call.id); callNames.set(call.id, call.name); }
    if (m.tool_call_id) covered.add(m.tool_call_id);
  }
  const toolSpans = new Map();
  const messageSpans = new Set(list.map((m) => m.trace_id + ":" + m.span_id));
  let last = null;
  for (const m of list) {
    const t = isoToUs(m.time) ?? last ?? 0;
    last = t;
    items.push({ type: "message", t, seq: seq++, m, trace: m.trace_id, agent: m.agent, session: m.session_id });
  }
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    const agent = index.agentOf(s);
    const callId = s.attrs["gen_ai.tool.call.id"] != null ? String(s.attrs["gen_ai.tool.call.id"]) : null;
    if (s.kind === "tool") {
      if (callId) toolSpans.set(callId, s);
      if (!callId || !covered.has(callId)) items.push({ type: "tool", t: s.start, seq: seq++, span: s, trace: s.traceId, agent });
    } else if (s.error) {
      items.push({ type: "error", t: s.end, seq: seq++, span: s, trace: s.traceId, agent });
    } else if (s.kind === "llm" && !messageSpans.has(s.key)) { // a model call the transcript has no message of
      items.push({ type: "model", t: s.end, seq: seq++, span: s, trace: s.traceId, agent });
    }
  }
  if (!list.length && index) { // no transcript: each trace's outermost input and output
    for (const roots of index.roots.values()) {
      for (const root of roots) {
        const input = IO_IN.map((k) => root.attrs[k]).find((v) => v !== undefined);
        const output = IO_OUT.map((k) => root.attrs[k]).find((v) => v !== undefined);
        const agent = index.agentOf(root);
        if (input !== undefined) items.push({ type: "io", dir: "input", t: root.start, seq: -1e9 + seq++, span: root, value: input, trace: root.traceId, agent });
        if (output !== undefined) items.push({ type: "io", dir: "output", t: root.end, seq: seq++, span: root, value: output, trace: root.traceId, agent });
      }
    }
  }
  items.sort((a, b) => a.t - b.t || a.seq - b.seq);

  const chat = h("div", { class: "chat" });
  const notes = [];
  if (messages === null) {
    notes.push(h("p", { class: "notice", text: "This service has no transcript route (GET /v1/sessions/{id}/messages): "
      + "showing what the spans tell — each turn's input and output, model calls, tool calls and errors." }));
  } else if (messages?.error) {
    notes.push(h("p", { class: "problem", text: "The transcript could not be read: " + (messages.error.message || messages.error) }));
  } else if (!list.length && index) {
    notes.push(h("p", { class: "muted small", text: "No message content was recorded on these spans (instrumentations capture it when asked to); "
      + "showing each turn's input and output, model calls, tool calls and errors." }));
  }
  if (messages?.truncated) notes.push(h("p", { class: "notice", text: `Showing the first ${list.length} messages.` }));
  let prevAgent = null, prevTrace = null, prevSession = null, turn = 0;
  const traceRoots = new Map();
  if (index) for (const [traceId, roots] of index.roots) traceRoots.set(traceId, roots[0]);
  items.forEach((item) => {
    if (ctx.sessionNames && item.session && item.session !== prevSession) {
      chat.append(h("div", { class: "divider session" }, h("a", { href: "#/session/" + enc(item.session),
        text: ctx.sessionNames.get(item.session) || item.session })));
      prevSession = item.session;
      prevAgent = null;
    }
    if (item.trace && item.trace !== prevTrace && !ctx.sessionNames) {
      turn += 1;
      const root = traceRoots.get(item.trace);
      chat.append(h("div", { class: "divider turn" }, h("a", {
        href: root ? spanHash(ctx.sessionId, root.traceId, root.spanId) : "#", class: "muted",
        text: `turn ${turn}` + (root ? ` · ${root.name} · ${fmtClock(root.start)}` : "") })));
      prevTrace = item.trace;
      prevAgent = null;  // a new turn starts where the user's message lands, not with a handoff
    }
    if (item.agent && prevAgent && item.agent !== prevAgent && !(item.type === "message" && item.m.role === "user")) {
      chat.append(h("div", { class: "divider handoff", text: `${prevAgent} → ${item.agent}` }));
    }
    if (item.agent) prevAgent = item.agent;  // the agent the user's message went to counts: it hands off
    if (item.type === "message") chat.append(messageEl(item.m, ctx, `m:${item.seq}:${item.m.span_id || ""}`, toolSpans, callNames));
    else if (item.type === "tool") chat.append(toolItem(item.span, ctx));
    else if (item.type === "error") chat.append(errorItem(item.span, ctx, item.agent));
    else if (item.type === "model") chat.append(modelItem(item.span, ctx, item.agent));
    else chat.append(ioItem(item.span, item.value, item.dir, ctx, item.agent));
  });
  if (!items.length) chat.append(h("p", { class: "muted", text: "Nothing to show: no messages, tool calls or errors." }));
  return fill(h("section", { class: "conversation" }), notes, chat);
}
