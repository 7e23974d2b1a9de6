// The Timeline tab: each trace of the session as a waterfall of its span tree; clicking a span
// opens the side panel (panel.js) and puts the span in the address (shareable).

import { optional } from "./api.js";
import { fill, fmtCost, fmtMs, fmtTokens, h } from "./dom.js";
import { enc, spanHash } from "./links.js";
import { details } from "./otlp.js";
import { spanPanel } from "./panel.js";
import { traceViewerLink } from "./settings.js";

const KINDS = ["llm", "tool", "agent", "guardrail", "span"];
const COLLAPSE_OVER = 400; // spans: above this, traces start collapsed (except failed ones)

function tokensOf(span, usage) {
  if (usage) return usage.input_tokens + usage.output_tokens;
  const a = span.attrs;
  return (Number(a["gen_ai.usage.input_tokens"]) || 0) + (Number(a["gen_ai.usage.output_tokens"]) || 0);
}

export class Timeline {
  constructor(ctx, signal) {
    this.ctx = ctx;
    this.signal = signal;
    this.index = ctx.data.index;
    this.usage = ctx.data.usage || new Map();
    this.scale = sessionStorage.getItem("otel-sessions.scale") || "trace";
    this.rows = new Map(); // span key -> row
    this.groups = new Map(); // trace id -> {header, box, built, collapsed}
    this.selected = null;
    this.detailsCache = new Map();
    this.panel = h("aside", { class: "panel hidden", "aria-label": "span details" });
    this.list = h("div", { class: "timeline", role: "tree", "aria-label": "traces and spans" });
    this.el = h("section", { class: "timeline-tab" }, this.toolbar(), h("div", { class: "tl-wrap" }, this.list, this.panel));
    this.build();
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.el.isConnected && this.selected) this.close();
    }, { signal });
  }

  toolbar() {
    const filter = h("input", { type: "search", placeholder: "filter spans by name", "aria-label": "filter spans" });
    filter.addEventListener("input", () => this.applyFilter(filter.value.trim().toLowerCase(), errorsOnly.checked));
    const errorsOnly = h("input", { type: "checkbox", "aria-label": "failed spans only" });
    errorsOnly.addEventListener("change", () => this.applyFilter(filter.value.trim().toLowerCase(), errorsOnly.checked));
    const scale = h("select", { "aria-label": "bar scale" },
      h("option", { value: "trace", selected: this.scale === "trace", text: "scale: each trace" }),
      h("option", { value: "session", selected: this.scale === "session", text: "scale: whole session" }));
    scale.addEventListener("change", () => {
      this.scale = scale.value;
      sessionStorage.setItem("otel-sessions.scale", this.scale);
      this.placeBars();
    });
    const expand = h("button", { type: "button", class: "secondary", text: "expand all" });
    expand.addEventListener("click", () => { for (const id of this.groups.keys()) this.setCollapsed(id, false); });
    const collapse = h("button", { type: "button", class: "secondary", text: "collapse all" });
    collapse.addEventListener("click", () => { for (const id of this.groups.keys()) this.setCollapsed(id, true); });
    return h("div", { class: "toolbar" }, filter, h("label", { class: "chip" }, errorsOnly, "failed only"), scale, expand, collapse,
      h("span", { class: "legend" }, KINDS.map((k) => h("span", { class: ["kind", k], text: k })),
        h("span", { class: "kind", style: { background: "var(--err)" }, text: "error" })));
  }

  build() {
    const { roots, spans } = this.index;
    this.t0 = spans.reduce((t, s) => Math.min(t, s.start), Infinity);
    this.t1 = spans.reduce((t, s) => Math.max(t, s.end), -Infinity);
    const summaries = new Map((this.ctx.data.summary.traces || []).map((t) => [t.trace_id, t]));
    const traces = [...roots.entries()].map(([traceId, list]) => ({ traceId, list, start: list[0].start }))
      .sort((a, b) => a.start - b.start);
    const collapseAll = spans.length > COLLAPSE_OVER;
    if (!traces.length) this.list.append(h("p", { class: "muted", text: "No spans stored for this session." }));
    for (const { traceId, list } of traces) {
      const own = this.traceSpans(list);
      const summary = summaries.get(traceId);
      const start = own.reduce((t, s) => Math.min(t, s.start), Infinity);
      const end = own.reduce((t, s) => Math.max(t, s.end), -Infinity);
      const failed = own.some((s) => s.error);
      const tokens = summary ? summary.total_tokens : own.reduce((n, s) => n + (this.usage.get(s.key)?.counted ? tokensOf(s, this.usage.get(s.key)) : 0), 0);
      const twisty = h("span", { class: "twisty", "aria-hidden": "true" });
      const viewer = traceViewerLink(traceId);
      const header = h("div", { class: ["row", "trace", failed && "err"], role: "treeitem", tabindex: "0", dataset: { trace: traceId } },
        h("div", { class: "name", title: traceId }, twisty, list[0].name || traceId),
        h("div", { class: "small muted nowrap", style: { overflow: "hidden", textOverflow: "ellipsis" } },
          `${own.length} spans · ${fmtTokens(tokens)} tok` + (summary ? " · " + fmtCost(summary.cost_usd) : ""),
          failed ? h("span", { class: "errbadge", text: " · error" }) : null,
          viewer ? [" · ", h("a", { href: viewer, target: "_blank", rel: "noopener noreferrer", text: "viewer ↗" })] : null),
        h("div", { class: "figs", text: fmtMs((end - start) / 1000) }));
      const box = h("div", { class: "trace-spans", role: "group" });
      const group = { header, box, twisty, own, start, end, built: false, collapsed: collapseAll && !failed };
      this.groups.set(traceId, group);
      const toggle = (event) => {
        if (event.target.closest("a")) return;
        this.setCollapsed(traceId, !group.collapsed);
      };
      header.addEventListener("click", toggle);
      header.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(event); } });
      this.list.append(header, box);
      this.setCollapsed(traceId, group.collapsed);
    }
  }

  /** A trace's spans in tree order, each with its depth. */
  traceSpans(roots) {
    const out = [];
    const stack = [...roots].reverse().map((s) => [s, 0]);
    while (stack.length) {
      const [span, depth] = stack.pop();
      span.depth = depth;
      out.push(span);
      const kids = this.index.children.get(span.key) || [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
    }
    return out;
  }

  setCollapsed(traceId, collapsed) {
    const group = this.groups.get(traceId);
    if (!group) return;
    group.collapsed = collapsed;
    group.twisty.textContent = collapsed ? "▸" : "▾";
    group.header.setAttribute("aria-expanded", String(!collapsed));
    if (!collapsed && !group.built) this.buildRows(traceId, group);
    group.box.classList.toggle("hidden", collapsed);
  }

  buildRows(traceId, group) {
    group.built = true;
    for (const span of group.own) {
      const usage = this.usage.get(span.key);
      const tokens = tokensOf(span, usage);
      const bar = h("div", { class: ["bar", span.kind] });
      const row = h("div", { class: ["row", span.error && "err"], role: "treeitem", tabindex: "0",
                             dataset: { span: span.spanId, trace: span.traceId, name: span.name.toLowerCase() } },
        h("div", { class: "name", title: span.name, style: { paddingLeft: Math.min(span.depth, 12) * 12 + "px" } },
          h("span", { class: ["kind", span.kind], text: span.kind }), span.name),
        h("div", { class: "track" }, bar),
        h("div", { class: "figs", title: usage ? `${usage.input_tokens} in / ${usage.output_tokens} out` : "" },
          fmtMs((span.end - span.start) / 1000) + (tokens ? ` · ${fmtTokens(tokens)} tok` : "")
          + (usage?.cost_usd ? ` · ${fmtCost(usage.cost_usd)}${usage.cost_estimated ? "*" : ""}` : "")));
      row.addEventListener("click", () => { location.hash = spanHash(this.ctx.sessionId, span.traceId, span.spanId); });
      row.addEventListener("keydown", (event) => { if (event.key === "Enter") location.hash = spanHash(this.ctx.sessionId, span.traceId, span.spanId); });
      row.bar = bar;
      row.span = span;
      this.rows.set(span.key, row);
      group.box.append(row);
    }
    this.placeBars(group);
    if (this.filterState) this.applyFilter(...this.filterState);
  }

  placeBars(only) {
    for (const group of only ? [only] : this.groups.values()) {
      if (!group.built) continue;
      const [t0, t1] = this.scale === "session" ? [this.t0, this.t1] : [group.start, group.end];
      const width = Math.max(1, t1 - t0);
      for (const span of group.own) {
        const row = this.rows.get(span.key);
        if (!row) continue;
        row.bar.style.left = ((span.start - t0) / width * 100).toFixed(3) + "%";
        row.bar.style.width = ((span.end - span.start) / width * 100).toFixed(3) + "%";
      }
    }
  }

  applyFilter(text, errorsOnly) {
    this.filterState = [text, errorsOnly];
    for (const row of this.rows.values()) {
      const show = (!text || row.dataset.name.includes(text)) && (!errorsOnly || row.span.error);
      row.classList.toggle("hidden", !show);
    }
    if (text || errorsOnly) for (const [id, group] of this.groups) if (group.collapsed && group.own.some((s) => (!errorsOnly || s.error)
      && (!text || s.name.toLowerCase().includes(text)))) this.setCollapsed(id, false);
  }

  close() {
    location.hash = `#/session/${enc(this.ctx.sessionId)}/timeline`;
  }

  /** Select a span (open its panel), or none. */
  select(traceId, spanId) {
    const span = spanId ? (traceId ? this.index.byKey.get(traceId + ":" + spanId) : this.index.spans.find((s) => s.spanId === spanId)) : null;
    if (this.selected) this.rows.get(this.selected.key)?.classList.remove("selected");
    this.selected = span || null;
    this.missing?.remove();
    this.missing = null;
    if (!span) {
      this.panel.classList.add("hidden");
      fill(this.panel);
      if (spanId) {
        this.missing = h("p", { class: "notice", text: `No span ${spanId} in this session.` });
        this.list.prepend(this.missing);
      }
      return;
    }
    if (this.groups.get(span.traceId)?.collapsed) this.setCollapsed(span.traceId, false);
    const row = this.rows.get(span.key);
    row?.classList.add("selected");
    row?.scrollIntoView({ block: "nearest" });
    this.showPanel(span, this.detailsCache.get(span.key) || details(span, this.ctx.sessionId));
    if (!this.detailsCache.has(span.key)) this.fetchDetails(span);
  }

  showPanel(span, d) {
    fill(this.panel, spanPanel(d, { span, usage: this.usage.get(span.key) || null, agent: this.index.agentOf(span),
                                    sessionId: this.ctx.sessionId, onClose: () => this.close() }));
    this.panel.classList.remove("hidden");
    this.panel.dataset.span = span.spanId;
  }

  async fetchDetails(span) {
    const path = `/v1/sessions/${enc(this.ctx.sessionId)}/spans/${enc(span.spanId)}?trace_id=${enc(span.traceId)}`;
    try {
      const d = await optional(path, { signal: this.signal, route: "/v1/sessions/{session_id}/spans/{span_id}" });
      if (!d) return; // no such route here: the stored span, as shown, is all there is
      this.detailsCache.set(span.key, d);
      if (this.selected === span) this.showPanel(span, d);
    } catch (error) {
      if (!this.signal.aborted) console.warn("span details:", error);
    }
  }
}
