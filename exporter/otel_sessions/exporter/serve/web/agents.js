// The Agents tab: which agent handed off to which, from the spans' gen_ai.agent.name and their
// parentage (an agent's span under another agent's span is a handoff), with each agent's model
// calls, tool calls, tokens and cost (GET /v1/sessions/{id}/usage: counted as the summary
// counts them, so the agents add up to the session's totals).

import { fill, fmtClock, fmtCost, fmtInt, fmtMs, h } from "./dom.js";
import { agentChip, spanHash } from "./links.js";
import { errorText, modelOf, toolName } from "./otlp.js";

const CALL_ROWS = 50;

function newNode(name, parent) {
  return { name, parent, path: (parent?.path ? parent.path + " › " : "") + (name ?? "(no agent)"), children: new Map(),
           invocations: [], calls: [], tools: new Map(), errors: [], input: 0, output: 0, cacheRead: 0, cacheWrite: 0,
           cost: 0, estimated: false, busyUs: 0 };
}

/** The agent tree of an index: a root node (spans outside any agent) and its children. */
export function agentTree(index, usage) {
  const top = newNode(null, null);
  top.path = "";
  const walk = (root) => {
    const stack = [[root, top]];
    while (stack.length) {
      const [span, parentNode] = stack.pop();
      let node = parentNode;
      const own = span.attrs["gen_ai.agent.name"] ? String(span.attrs["gen_ai.agent.name"]) : null;
      if (own && own !== parentNode.name) {
        node = parentNode.children.get(own);
        if (!node) { node = newNode(own, parentNode === top ? null : parentNode); parentNode.children.set(own, node); }
        node.invocations.push(span);
        node.busyUs += span.end - span.start;
      }
      const u = usage?.get(span.key);
      if (u?.counted) {
        node.input += u.input_tokens; node.output += u.output_tokens;
        node.cacheRead += u.cache_read_tokens; node.cacheWrite += u.cache_write_tokens;
        node.cost += u.cost_usd; node.estimated ||= u.cost_estimated;
      } else if (!usage && span.kind === "llm") {
        node.input += Number(span.attrs["gen_ai.usage.input_tokens"]) || 0;
        node.output += Number(span.attrs["gen_ai.usage.output_tokens"]) || 0;
      }
      if (span.kind === "llm") node.calls.push(span);
      if (span.kind === "tool") {
        const name = toolName(span);
        if (!node.tools.has(name)) node.tools.set(name, { calls: 0, failed: [] });
        const tool = node.tools.get(name);
        tool.calls += 1;
        if (span.error) tool.failed.push(span);
      } else if (span.error) {
        node.errors.push(span);
      }
      const kids = index.children.get(span.key) || [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], node]);
    }
  };
  const roots = [...index.roots.values()].flat().sort((a, b) => a.start - b.start);
  for (const root of roots) walk(root);
  return top;
}

function total(node) {
  let n = { input: node.input, output: node.output, cost: node.cost };
  for (const child of node.children.values()) {
    const t = total(child);
    n = { input: n.input + t.input, output: n.output + t.output, cost: n.cost + t.cost };
  }
  return n;
}

function callsTable(node, ctx) {
  const rows = node.calls.slice(0, CALL_ROWS).map((span) => {
    const u = ctx.data.usage?.get(span.key);
    return h("tr", { class: span.error ? "error" : null },
      h("td", null, h("a", { href: spanHash(ctx.sessionId, span.traceId, span.spanId), text: fmtClock(span.start) })),
      h("td", { class: "wrap", text: modelOf(span) || span.name }),
      h("td", { class: "num", text: u ? fmtInt(u.input_tokens) : "–" }),
      h("td", { class: "num", text: u ? fmtInt(u.output_tokens) : "–" }),
      h("td", { class: "num", text: u ? fmtCost(u.cost_usd) + (u.cost_estimated ? "*" : "") : "–" }),
      h("td", { class: "num", text: fmtMs((span.end - span.start) / 1000) }));
  });
  return h("div", { class: "scroll-x" }, h("table", { class: "calls", "aria-label": "model calls of " + (node.name || "no agent") },
    h("thead", null, h("tr", null, ["call", "model", "in", "out", "cost", "time"].map((x, i) => h("th", { class: i > 1 ? "num" : null, text: x })))),
    h("tbody", null, rows)),
    node.calls.length > CALL_ROWS ? h("p", { class: "muted small", text: `and ${node.calls.length - CALL_ROWS} more model calls (see the timeline)` }) : null);
}

function nodeEl(node, ctx) {
  const color = node.name ? null : "#94a3b8";
  const toolCalls = [...node.tools.values()].reduce((n, t) => n + t.calls, 0);
  const failures = [...node.tools.values()].flatMap((t) => t.failed).concat(node.errors);
  const sub = total(node);
  const handedTo = [...node.children.keys()];
  const el = h("div", { class: "agent-node", dataset: { agent: node.name || "" }, style: color ? { borderLeftColor: color } : null },
    h("h3", null, node.name ? agentChip(node.name) : h("span", { class: "muted", text: "outside any agent" }),
      node.parent ? h("span", { class: "via", text: `  handed off from ${node.parent.name}` }) : null,
      handedTo.length ? h("span", { class: "via", text: `  → hands off to ${handedTo.join(", ")}` }) : null),
    h("div", { class: "stats" },
      node.name ? h("span", null, "invoked ", h("b", { text: fmtInt(node.invocations.length) }), "×, ", h("b", { text: fmtMs(node.busyUs / 1000) })) : null,
      h("span", null, h("b", { text: fmtInt(node.calls.length) }), " model calls"),
      h("span", null, h("b", { text: fmtInt(toolCalls) }), " tool calls"),
      h("span", null, "tokens ", h("b", { text: `${fmtInt(node.input)} in · ${fmtInt(node.output)} out` }),
        node.cacheRead || node.cacheWrite ? ` (cached ${fmtInt(node.cacheRead)} read · ${fmtInt(node.cacheWrite)} written)` : null),
      ctx.data.usage ? h("span", null, "cost ", h("b", { text: fmtCost(node.cost) + (node.estimated ? "*" : "") })) : null,
      node.children.size ? h("span", null, "with handoffs ", h("b", { text: `${fmtInt(sub.input + sub.output)} tok · ${fmtCost(sub.cost)}` })) : null,
      failures.length ? h("span", { class: "errbadge", text: `${failures.length} failed` }) : null),
    node.tools.size ? h("div", { class: "chips small" }, [...node.tools.entries()].map(([name, t]) =>
      h("span", { class: ["chip", t.failed.length && "failed"], title: name },
        h("span", { class: "kind tool", text: "tool" }), `${name} ×${t.calls}`,
        t.failed.length ? h("span", { class: "errbadge", text: ` ${t.failed.length} failed` }) : null))) : null,
    failures.map((span) => h("div", { class: "failure small", style: { marginTop: "6px" } },
      h("b", { text: span.name + ": " }), h("span", { class: "errmsg", text: errorText(span) }), " ",
      h("a", { href: spanHash(ctx.sessionId, span.traceId, span.spanId), text: "span ↗" }))),
    node.calls.length ? h("details", { open: node.calls.length <= 8 }, h("summary", { class: "small", text: "model calls" }), callsTable(node, ctx)) : null,
    node.children.size ? h("div", { class: "agent-children" }, [...node.children.values()].map((child) => nodeEl(child, ctx))) : null);
  return el;
}

export function renderAgents(ctx) {
  const top = agentTree(ctx.data.index, ctx.data.usage);
  const section = h("section", { class: "agents-tab" });
  const outside = top.calls.length || top.tools.size || top.errors.length || top.input || top.output;
  if (!top.children.size) {
    return fill(section, h("p", { class: "notice", text: "No span of this session names an agent (gen_ai.agent.name)." }),
      outside ? h("div", { class: "agents" }, nodeEl(top, ctx)) : null);
  }
  return fill(section,
    h("p", { class: "muted small", text: "Agents by handoff: an agent's span under another agent's span is a handoff. "
      + "Tokens and cost are the agent's own model calls, counted as in the session's totals"
      + (ctx.data.usage ? "; * estimated from the price table." : ".") }),
    h("div", { class: "agents" }, outside ? nodeEl(top, ctx) : null, [...top.children.values()].map((node) => nodeEl(node, ctx))));
}
