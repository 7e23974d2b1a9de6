// Addresses within the page, and the agent chip every view uses.

import { h, hue } from "./dom.js";

export const enc = encodeURIComponent;

/** The address of a span on the session page (the timeline, its side panel open). */
export function spanHash(sessionId, traceId, spanId) {
  return `#/session/${enc(sessionId)}/timeline?span=${enc(spanId)}` + (traceId ? `&trace=${enc(traceId)}` : "");
}

/** An agent's name in its own colour (the same name, the same colour, on every view). */
export function agentChip(name) {
  if (!name) return null;
  const color = `hsl(${hue(name)} 55% 35%)`;
  return h("span", { class: "agent-chip", style: { color, borderColor: color }, title: "agent " + name, text: name });
}
