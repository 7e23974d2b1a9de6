// The page's router. Addresses (hash, so links are shareable and the service serves one page):
//   #/sessions?<filters>                          the session list (GET /v1/sessions parameters,
//                                                 plus since=15m|1h|6h|24h|7d)
//   #/session/<id>[/conversation|timeline|agents|logs][?span=<span id>&trace=<trace id>]
//   #/thread/<id>
// ?jaeger=<url> on the page's own address sets the trace viewer (settings.js).

import { h } from "./dom.js";
import { ListView } from "./list.js";
import { SessionView } from "./session.js";
import { openSettings, readAddress } from "./settings.js";
import { ThreadView } from "./thread.js";

const app = document.getElementById("app");
let current = null; // {kind, id, view}

function parse(hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const q = raw.indexOf("?");
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : "");
  const parts = path.split("/").filter(Boolean).map((part) => {
    try { return decodeURIComponent(part); } catch { return part; }
  });
  return { parts, params };
}

function open(kind, id, make) {
  if (current && current.kind === kind && current.id === id) return current.view;
  current?.view.destroy();
  window.scrollTo(0, 0);
  current = { kind, id, view: make() };
  return current.view;
}

function route() {
  const { parts, params } = parse(location.hash);
  document.getElementById("nav-sessions")?.classList.toggle("current", !parts[0] || parts[0] === "sessions");
  try {
    if (parts[0] === "session" && parts[1]) {
      open("session", parts[1], () => new SessionView(app, parts[1])).show(parts[2] || "conversation", params);
    } else if (parts[0] === "thread" && parts[1]) {
      open("thread", parts[1], () => new ThreadView(app, parts[1])).show(params);
    } else {
      // the list re-reads on every change of its filters
      current?.view.destroy();
      current = { kind: "list", id: params.toString(), view: new ListView(app) };
      current.view.show(params);
    }
  } catch (error) {
    console.warn(error);
    app.replaceChildren(h("p", { class: "problem", text: String(error.message || error) }));
  }
}

readAddress();
document.getElementById("settings-button").addEventListener("click", () => openSettings(() => {
  if (current) { const view = current.view; current = null; view.destroy(); }
  route();
}));
window.addEventListener("hashchange", route);
route();
