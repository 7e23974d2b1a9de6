// A session's spans as the page uses them, from OTLP/JSON TracesData
// (GET /v1/sessions/{id}/spans): flat records with decoded attributes, their tree, their kind
// (GenAI semantic conventions, OpenInference, Traceloop) and their agent.

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
const STATUS = ["unset", "ok", "error"];
const ZERO_SPAN = "0000000000000000";

/** An OTLP/JSON AnyValue as a plain JSON value. */
export function anyValue(v) {
  if (!v || typeof v !== "object") return null;
  if ("stringValue" in v) return v.stringValue;
  if ("intValue" in v) return Number(v.intValue);
  if ("doubleValue" in v) return v.doubleValue;
  if ("boolValue" in v) return v.boolValue;
  if ("arrayValue" in v) return (v.arrayValue.values || []).map(anyValue);
  if ("kvlistValue" in v) return attributes(v.kvlistValue.values);
  if ("bytesValue" in v) return v.bytesValue;
  return null;
}

/** OTLP/JSON key-values as an object (a repeated key keeps its first value). */
export function attributes(list) {
  const out = {};
  for (const kv of list || []) if (!(kv.key in out)) out[kv.key] = anyValue(kv.value);
  return out;
}

function micros(nanos) {
  try { return Number(BigInt(nanos || 0) / 1000n); } catch { return 0; }
}

/** Flat span records of a TracesData, in stored order. */
export function flatten(tracesData) {
  const out = [];
  for (const rs of tracesData?.resourceSpans || []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans || []) {
      const scope = ss.scope && (ss.scope.name || ss.scope.version) ? { name: ss.scope.name || "", version: ss.scope.version || null } : null;
      for (const sp of ss.spans || []) out.push(record(sp, resource, scope));
    }
  }
  return out;
}

function record(sp, resource, scope) {
  const attrs = attributes(sp.attributes);
  const events = (sp.events || []).map((e) => ({ name: e.name || "", timeUs: micros(e.timeUnixNano), attributes: attributes(e.attributes) }));
  const start = micros(sp.startTimeUnixNano);
  const end = Math.max(start, micros(sp.endTimeUnixNano));
  const parent = sp.parentSpanId && sp.parentSpanId !== ZERO_SPAN ? sp.parentSpanId : null;
  const statusCode = STATUS[sp.status?.code] || (typeof sp.status?.code === "string" ? sp.status.code.replace("STATUS_CODE_", "").toLowerCase() : "unset");
  const exceptionEvent = events.find((e) => e.name === "exception");
  const span = {
    traceId: sp.traceId, spanId: sp.spanId, parentSpanId: parent, name: sp.name || "",
    kindName: KINDS[sp.kind] || (typeof sp.kind === "string" ? sp.kind.replace("SPAN_KIND_", "").toLowerCase() : "unspecified"),
    start, end, attrs, events, resource, scope, links: sp.links || [], traceState: sp.traceState || null,
    status: { code: statusCode, message: sp.status?.message || null },
    exception: exceptionEvent ? {
      type: exceptionEvent.attributes["exception.type"] ?? null,
      message: exceptionEvent.attributes["exception.message"] ?? null,
      stacktrace: exceptionEvent.attributes["exception.stacktrace"] ?? null,
    } : null,
  };
  span.error = statusCode === "error" || Boolean(exceptionEvent);
  span.kind = kindOf(span);
  span.key = sp.traceId + ":" + sp.spanId;
  return span;
}

/** What a span is, for colours and grouping: llm, tool, agent, guardrail or span. */
export function kindOf(span) {
  const a = span.attrs;
  const op = String(a["gen_ai.operation.name"] || a["openinference.span.kind"] || a["traceloop.span.kind"] || "").toLowerCase();
  const name = span.name.toLowerCase();
  if (op.includes("guardrail") || name.startsWith("guardrail") || a["guardrail.name"]) return "guardrail";
  if (op === "execute_tool" || op === "tool" || a["gen_ai.tool.name"]) return "tool";
  if (["invoke_agent", "create_agent", "agent", "handoff", "workflow", "chain"].includes(op)) return "agent";
  if (["chat", "text_completion", "generate_content", "embeddings", "llm", "embedding"].includes(op)
      || a["gen_ai.request.model"] || a["llm.model_name"]) return "llm";
  if (a["gen_ai.agent.name"]) return "agent";
  return "span";
}

/** The error text of a span: its exception ("Type: message"), else its status message. */
export function errorText(span) {
  if (span.exception && (span.exception.type || span.exception.message)) {
    return [span.exception.type, span.exception.message].filter(Boolean).join(": ");
  }
  return span.status.message || (span.error ? "error" : "");
}

/** The display name of a tool span. */
export function toolName(span) {
  return span.attrs["gen_ai.tool.name"] || span.attrs["tool.name"] || span.name.replace(/^execute_tool\s+/, "");
}

/** The model of a model-call span. */
export function modelOf(span) {
  const a = span.attrs;
  return a["gen_ai.response.model"] || a["gen_ai.request.model"] || a["llm.model_name"] || null;
}

/**
 * Index a session's spans: by key (trace:span), children lists in start order, roots per
 * trace, and each span's agent (its own gen_ai.agent.name, else its nearest ancestor's).
 */
export function index(spans) {
  const byKey = new Map();
  for (const s of spans) if (!byKey.has(s.key)) byKey.set(s.key, s);
  const children = new Map();
  const roots = new Map(); // traceId -> [root spans]
  for (const s of byKey.values()) {
    const parentKey = s.parentSpanId ? s.traceId + ":" + s.parentSpanId : null;
    if (parentKey && byKey.has(parentKey)) {
      if (!children.has(parentKey)) children.set(parentKey, []);
      children.get(parentKey).push(s);
    } else {
      if (!roots.has(s.traceId)) roots.set(s.traceId, []);
      roots.get(s.traceId).push(s);
    }
  }
  const byStart = (a, b) => a.start - b.start || a.end - b.end;
  for (const list of children.values()) list.sort(byStart);
  for (const list of roots.values()) list.sort(byStart);
  const parentOf = (s) => (s.parentSpanId ? byKey.get(s.traceId + ":" + s.parentSpanId) || null : null);
  // agents, iteratively (deep trees must not overflow the stack)
  const agent = new Map();
  const agentOf = (s) => {
    const chain = [];
    let cur = s;
    while (cur && !agent.has(cur.key) && chain.length < 10000) {
      chain.push(cur);
      if (cur.attrs["gen_ai.agent.name"]) break;
      cur = parentOf(cur);
    }
    let value = cur && agent.has(cur.key) ? agent.get(cur.key) : null;
    for (let i = chain.length - 1; i >= 0; i--) {
      const own = chain[i].attrs["gen_ai.agent.name"];
      if (own) value = String(own);
      agent.set(chain[i].key, value);
    }
    return agent.get(s.key) ?? null;
  };
  for (const s of byKey.values()) agentOf(s);
  return { spans: [...byKey.values()], byKey, children, roots, parentOf, agentOf: (s) => agent.get(s.key) ?? null };
}

/** A flat span as a SpanDetails (GET /v1/sessions/{id}/spans/{span_id}), for services without it. */
export function details(span, sessionId) {
  const iso = (us) => new Date(us / 1000).toISOString().replace(/\.(\d{3})Z$/, (_, ms) => "." + ms + String(us % 1000).padStart(3, "0") + "Z");
  return {
    session_id: sessionId, trace_id: span.traceId, span_id: span.spanId, parent_span_id: span.parentSpanId,
    name: span.name, kind: span.kindName, start_time: iso(span.start), end_time: iso(span.end),
    duration_ms: (span.end - span.start) / 1000, status: span.status, attributes: span.attrs, resource: span.resource,
    scope: span.scope, events: span.events.map((e) => ({ name: e.name, time: iso(e.timeUs), attributes: e.attributes })),
    exception: span.exception,
    links: span.links.map((l) => ({ trace_id: l.traceId, span_id: l.spanId, attributes: attributes(l.attributes) })),
    trace_state: span.traceState,
  };
}
