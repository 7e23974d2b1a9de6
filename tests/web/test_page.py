"""The web page in a real headless Chromium against a real service loaded with the demo
conversation: the list and its filters in the address, the session page (header, the
conversation with the failed tool call, the transcript, the timeline's span panel, the agent
tree), the thread page, the query token, the live tail, escaping, and the layout at 800 and
375 px. Every test fails on a console error or an uncaught exception; each saves a
screenshot under tests/artifacts/.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.request

import pytest

from tests.support import RunningService
from tests.web import dataset

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra").expect

REFUND_ERROR = "payment gateway timed out after 10s"


def _openapi(loaded) -> dict:
    with urllib.request.urlopen(loaded.url + "/openapi.json", timeout=10) as response:
        return json.load(response)


def _routes(loaded) -> set[str]:
    return set(_openapi(loaded)["paths"])


def _list_parameters(loaded) -> set[str]:
    return {p["name"] for p in _openapi(loaded)["paths"]["/v1/sessions"]["get"]["parameters"]}


def test_list_filters_are_kept_in_the_address(loaded, watched):
    page = watched.page
    page.goto(loaded.url + "/#/sessions")
    rows = page.locator("table.sessions tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator(".legend")).to_contain_text("estimated")
    # each row: the first user message under the name, the transcript's message count
    refund = rows.filter(has_text="Refund request")
    expect(refund.locator(".excerpt")).to_have_text("“The blender arrived broken, I want a refund.”")
    expect(refund.locator("td[data-label=messages]")).to_have_text("5")  # the question; three tool calls and the answer
    for button in (page.get_by_role("button", name="‹ previous"), page.get_by_role("button", name="next ›")):
        expect(button).to_be_disabled()
        assert button.evaluate("b => getComputedStyle(b).cursor") == "not-allowed"

    page.get_by_role("checkbox", name="failed").check()
    expect(page).to_have_url(re.compile(r"#/sessions\?status=failed$"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Weather question")
    page.get_by_role("checkbox", name="active").check()
    expect(page).to_have_url(re.compile(r"status=active,failed"))
    expect(rows).to_have_count(3)  # the refund request (still going), the markup session, the weather question
    page.get_by_label("metadata key=value").fill("plan=pro")
    page.get_by_label("metadata key=value").press("Enter")
    expect(page).to_have_url(re.compile(r"status=active,failed&metadata\.plan=pro$"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Refund request")
    watched.check("list-filtered")

    # a shared link shows the same filters, set in the form
    page.goto(loaded.url + "/#/sessions?status=failed,active&metadata.plan=free")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Weather question")
    expect(page.get_by_role("checkbox", name="failed")).to_be_checked()
    expect(page.get_by_role("checkbox", name="completed")).not_to_be_checked()
    expect(page.locator(".chip[data-key='metadata.plan']")).to_have_text(re.compile(r"plan=free"))
    page.goto(loaded.url + "/#/sessions?since=1h&user_id=u-123&sort_by=cost&sort_order=asc")
    expect(rows).to_have_count(3)
    expect(page.get_by_label("started", exact=True)).to_have_value("1h")
    costs = [float(t.strip("$*")) for t in rows.locator("td[data-label=cost]").all_inner_texts()]
    assert costs == sorted(costs) and len(costs) == 3
    # the agent and environment filters, when this service has them (else the page says so)
    page.goto(loaded.url + "/#/sessions?agent=billing_agent&environment=demo")
    if "agent" in _list_parameters(loaded):
        expect(page.get_by_label("agent", exact=True)).to_have_value("billing_agent")
        expect(rows).to_have_count(2)
        expect(page.locator("td.name a")).to_have_text(["Refund follow-up", "Refund request"])
    else:
        expect(page.locator(".notice")).to_contain_text("does not filter by agent, environment")
        expect(page.get_by_label("agent", exact=True)).to_have_count(0)
        expect(rows).to_have_count(5)
    watched.check()


def test_session_page_header_and_the_failed_tool_call(loaded, watched):
    page = watched.page
    session_id = loaded.session_id("Refund request")
    page.goto(loaded.url + "/#/sessions")
    page.get_by_role("link", name="Refund request").click()
    expect(page).to_have_url(re.compile(re.escape("#/session/" + session_id) + "$"))
    cards = page.locator(".cards")
    for label in ("status", "duration", "spans", "traces", "errors", "tokens", "cost", "models", "agents", "user", "thread"):
        expect(cards.locator(f".card[data-card={label}]")).to_have_count(1)
    expect(cards.locator(".card[data-card=errors] b")).to_have_text("1")
    expect(cards.locator(".card[data-card=cost]")).to_contain_text("* estimated")
    expect(cards.locator(".card[data-card=agents]")).to_contain_text("billing_agent")
    expect(cards.locator(".card[data-card=thread]")).to_contain_text(loaded.demo.thread_id)
    # the conversation figures: one user message, three tool calls asked and the streamed answer; three tool runs
    expect(cards.locator(".card[data-card=messages] b")).to_have_text("5")
    expect(cards.locator(".card[data-card='model latency']")).to_contain_text("first token")
    expect(cards.locator(".card[data-card='tool calls']")).to_contain_text("1 failed")
    expect(cards.locator(".card[data-card='tool calls'] b")).to_have_text("3")
    # the session's synthetic trace in the Jaeger-compatible API, and a link to it
    trace_id = hashlib.sha256(session_id.encode()).hexdigest()[:32]
    expect(page.locator(".trace-id")).to_have_text(trace_id)
    href = page.get_by_role("link", name="/api/sessions/…/trace").get_attribute("href")
    answer = page.request.get(loaded.url + href)
    assert answer.ok and answer.json()["data"][0]["traceID"] == trace_id

    expect(page.locator(".jaeger")).to_contain_text("set a Jaeger UI URL in Settings")

    conversation = page.locator("section.conversation")
    failed = conversation.locator(".call.failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("refund_payment")
    expect(failed.locator(".errmsg")).to_have_text(re.compile(re.escape(REFUND_ERROR)))
    assert failed.locator(".errmsg").evaluate("e => getComputedStyle(e).color") == "rgb(220, 38, 38)"  # red
    expect(conversation.locator(".divider.handoff")).to_contain_text("router → billing_agent")
    expect(conversation.locator(".msg[data-role=user]").first).to_contain_text("The blender arrived broken")
    expect(conversation.locator(".msg[data-role=assistant]").last).to_contain_text("I refunded $42.50")
    watched.check("session-conversation")
    # a tool call opens to its arguments
    failed.locator("summary").click()
    expect(failed.locator("pre").first).to_contain_text('"invoice": "INV-7781"')  # then the result: the error
    # each item links to its span
    failed.get_by_role("link", name="span ↗").click()
    expect(page).to_have_url(re.compile(r"/timeline\?span=[0-9a-f]{16}&trace=[0-9a-f]{32}$"))
    expect(page.locator("aside.panel .exception")).to_contain_text(REFUND_ERROR)
    watched.check()


def test_conversation_shows_the_transcript(loaded, watched):
    if "/v1/sessions/{session_id}/messages" not in _routes(loaded):
        pytest.skip("this service has no GET /v1/sessions/{id}/messages yet (the transcript API): the page shows the spans' view")
    page = watched.page
    page.goto(loaded.url + "/#/session/" + dataset.WEATHER_SESSION)
    conversation = page.locator("section.conversation")
    expect(conversation.locator(".msg[data-role=user]").first).to_contain_text(dataset.WEATHER_QUESTION)
    answer = conversation.locator(".msg[data-role=assistant]", has_text=dataset.WEATHER_ANSWER)
    expect(answer).to_have_count(1)
    expect(answer).to_contain_text("gpt-4o")
    call = conversation.locator(".msg[data-role=assistant] .call", has_text="get_weather")
    expect(call.locator(".errmsg")).to_contain_text(dataset.WEATHER_ERROR)
    expect(conversation.locator(".msg[data-role=system] summary")).to_contain_text("system instructions")
    expect(conversation.locator(".msg[data-role=tool]")).to_contain_text("result of get_weather")
    expect(page.locator(".notice", has_text="no transcript route")).to_have_count(0)
    answer.get_by_role("link", name="span ↗").click()
    expect(page.locator("aside.panel")).to_contain_text("chat gpt-4o")
    watched.check("session-transcript")


def test_timeline_span_panel(loaded, watched):
    page = watched.page
    session_id = loaded.session_id("Refund request")
    page.goto(f"{loaded.url}/#/session/{session_id}/timeline")
    rows = page.locator(".timeline .row[data-span]")
    expect(rows).to_have_count(10)
    failed = page.locator(".timeline .row.err[data-span]")
    expect(failed).to_have_count(1)
    failed.click()
    panel = page.locator("aside.panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".exception .errmsg")).to_have_text(f"TimeoutError: {REFUND_ERROR}")
    expect(panel).to_contain_text("refund_payment")
    expect(panel.locator(".event.failed")).to_contain_text("exception")
    expect(page).to_have_url(re.compile(r"timeline\?span=[0-9a-f]{16}&trace=[0-9a-f]{32}$"))
    shared = page.url
    watched.check("session-timeline")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/timeline$"))
    # a model call's panel shows its tokens and its estimated cost
    rows.filter(has_text="chat gpt-4o-mini").click()
    expect(panel.locator("section", has_text="usage and cost")).to_contain_text("455 in · 21 out")
    expect(panel).to_contain_text("estimated from the price table")
    # the shared address opens the same panel
    page.goto(loaded.url + "/#/sessions")
    page.goto(shared)
    expect(page.locator("aside.panel .exception")).to_contain_text(REFUND_ERROR)
    watched.check()


def test_agents_tab(loaded, watched):
    page = watched.page
    session_id = loaded.session_id("Refund request")
    page.goto(f"{loaded.url}/#/session/{session_id}/agents")
    router = page.locator(".agent-node[data-agent=router]")
    expect(router).to_contain_text("hands off to billing_agent")
    billing = router.locator(".agent-children .agent-node[data-agent=billing_agent]")
    expect(billing).to_contain_text("4 model calls")
    expect(billing).to_contain_text("3 tool calls")
    expect(billing.locator(".chip", has_text="refund_payment")).to_contain_text("×2 1 failed")
    expect(billing.locator(".failure")).to_contain_text(REFUND_ERROR)
    # the agents' tokens add up to the session's
    summary = json.load(urllib.request.urlopen(f"{loaded.url}/v1/sessions/{session_id}", timeout=10))
    tokens = 0
    for node in (router, billing):
        text = node.locator(".stats").first.inner_text()
        tokens += sum(int(x.replace(",", "")) for x in re.search(r"tokens ([\d,]+) in · ([\d,]+) out", text).groups())
    assert tokens == summary["total_tokens"]
    watched.check("session-agents")


def test_thread_page(loaded, watched):
    page = watched.page
    page.goto(f"{loaded.url}/#/session/{loaded.session_id('Refund request')}")
    page.locator(".card[data-card=thread]").get_by_role("link").click()
    expect(page).to_have_url(re.compile(re.escape("#/thread/" + loaded.demo.thread_id) + "$"))
    names = page.locator("table.sessions tbody td.name a")
    expect(names).to_have_text(["Order status", "Refund request", "Refund follow-up"])
    expect(page.locator(".card[data-card=sessions] b")).to_have_text("3")
    expect(page.locator(".card[data-card=spans] b")).to_have_text(str(loaded.demo.span_count))
    transcript = page.locator(".thread-transcript")
    if "/v1/threads/{thread_id}/messages" in _routes(loaded):
        expect(transcript.locator(".divider.session")).to_have_count(3)
    else:
        expect(transcript).to_contain_text("no thread transcript route")
    watched.check("thread")


def test_layout_at_800_and_375_px(loaded, watched):
    page = watched.page
    refund = loaded.session_id("Refund request")
    views = [("list", "#/sessions"), ("session", f"#/session/{refund}"),
             ("timeline", f"#/session/{refund}/timeline"), ("agents", f"#/session/{refund}/agents"),
             ("thread", f"#/thread/{loaded.demo.thread_id}")]
    for width in (800, 375):
        page.set_viewport_size({"width": width, "height": 900})
        for name, address in views:
            page.goto(f"{loaded.url}/{address}")
            page.locator("table.sessions, .tab-body > section").first.wait_for()
            overflow = page.evaluate("""() => {
                const doc = document.documentElement, main = document.querySelector("main");
                return {page: doc.scrollWidth - doc.clientWidth, main: main.scrollWidth - main.clientWidth};
            }""")
            assert overflow == {"page": 0, "main": 0}, (width, name, overflow)
            if name == "list":  # on a phone the filters past search and status fold away
                user = page.get_by_label("user", exact=True)
                if width == 375:
                    expect(user).to_be_hidden()
                    page.get_by_role("button", name="more filters").click()
                expect(user).to_be_visible()
            if width == 375:
                watched.check(f"{name}-375")
    watched.check()


def test_markup_in_data_is_shown_as_text(loaded, watched):
    page = watched.page
    page.goto(loaded.url + "/#/sessions?user_id=<u>")
    row = page.locator("table.sessions tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td.name a")).to_have_text(dataset.MARKUP_NAME)
    row.locator("td.name a").click()
    expect(page.locator("h2")).to_have_text(dataset.MARKUP_NAME)
    page.get_by_role("link", name="Timeline").click()
    expect(page.locator(".timeline .row[data-span]")).to_contain_text("<script>window.injected=2</script>")
    assert page.evaluate("() => window.injected") is None
    assert page.locator("#injected").count() == 0 and page.locator("main script").count() == 0
    watched.check()


def test_query_token_is_asked_once_per_tab(loaded, watched, redis_server):
    with RunningService(redis_server.url, query_token="s3cret") as guarded:
        page = watched.page
        page.goto(guarded.http_url + "/#/sessions")
        dialog = page.locator("dialog.token-dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_label("query token").fill("wrong")
        dialog.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_visible()  # refused again: asked again
        dialog.get_by_label("query token").fill("s3cret")
        dialog.get_by_label("query token").press("Enter")  # Enter uses the token (not Cancel)
        expect(page.locator("table.sessions tbody tr")).to_have_count(5)
        assert page.evaluate("() => sessionStorage.getItem('otel-sessions.token')") == "s3cret"
        assert page.evaluate("() => localStorage.length") == 0  # kept for the tab only
        page.goto(f"{guarded.http_url}/#/session/{loaded.session_id('Refund request')}/timeline")
        expect(page.locator(".timeline .row[data-span]")).to_have_count(10)
        other = page.context.new_page()  # another tab: asked again
        other.goto(guarded.http_url + "/#/sessions")
        expect(other.locator("dialog.token-dialog")).to_be_visible()
        other.close()
    # the browser logs each 401 answer as a console error: those are the point here
    watched.problems[:] = [p for p in watched.problems if "401 (Unauthorized)" not in p]
    watched.check()


def test_a_token_without_the_read_scope_is_asked_again(loaded, watched, redis_server):
    """The ingest token typed where the query token belongs: 403, and the page asks again,
    saying a token with the read scope is needed."""
    with RunningService(redis_server.url, ingest_token="ingest-only-4b1", query_token="read-4b1") as guarded:
        page = watched.page
        page.goto(guarded.http_url + "/#/sessions")
        dialog = page.locator("dialog.token-dialog")
        dialog.get_by_label("query token").fill("ingest-only-4b1")
        dialog.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("read scope")
        dialog.get_by_label("query token").fill("read-4b1")
        dialog.get_by_role("button", name="Use token").click()
        expect(page.locator("table.sessions tbody tr")).to_have_count(5)
    watched.problems[:] = [p for p in watched.problems if "401 (Unauthorized)" not in p and "403 (Forbidden)" not in p]
    watched.check()


def test_token_from_a_file_is_asked_for_and_carried_by_the_live_tail(loaded, watched, redis_server, tmp_path):
    """A service started with its query token in a file: the page asks for it, the list loads,
    and the live tail (read with fetch) carries it in the Authorization header, never in an address."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from tests.support import provider_with

    token = "page-token-6e2d9b"
    (tmp_path / "query.token").write_text(token + "\n")
    ingest = "page-ingest-2f81c4"  # once any token is set, ingest needs one of its own
    with RunningService(redis_server.url, query_token_file=str(tmp_path / "query.token"),
                        ingest_token=ingest) as guarded:
        provider = provider_with(OTLPSpanExporter(endpoint=guarded.http_url + "/v1/traces", timeout=10,
                                                  headers={"authorization": f"Bearer {ingest}"}), "live-app")
        tracer = provider.get_tracer("tests.web")

        def send(n: int) -> None:
            tracer.start_span(f"guarded step {n}", attributes={"session.id": "sess_web_guarded"}).end()

        send(0)
        page = watched.page
        sent: list[tuple[str, str | None]] = []
        page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))
        page.goto(guarded.http_url + "/#/sessions")
        dialog = page.locator("dialog.token-dialog")
        expect(dialog).to_be_visible()
        dialog.get_by_label("query token").fill(token)
        dialog.get_by_role("button", name="Use token").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("table.sessions tbody tr").first).to_be_visible()
        page.goto(guarded.http_url + "/#/session/sess_web_guarded/timeline")  # same tab: not asked again
        spans = page.locator(".card[data-card=spans] b")
        expect(spans).to_have_text("1")
        page.get_by_role("button", name="live: off").click()
        deadline = time.monotonic() + 20
        n = 0
        while spans.inner_text() == "1":
            assert time.monotonic() < deadline, "no live update"
            n += 1
            send(n)
            try:
                expect(spans).not_to_have_text("1", timeout=2000)
            except AssertionError:
                continue
        provider.shutdown()
        page.get_by_role("button", name="live", exact=True).click()
        tails = [(url, auth) for url, auth in sent if url.endswith("/v1/sessions/sess_web_guarded/tail")]
        assert tails and all(auth == f"Bearer {token}" for _, auth in tails), tails
        assert not [url for url, _ in sent if token in url]  # never in an address (so never in a log line)
    watched.problems[:] = [p for p in watched.problems if "401 (Unauthorized)" not in p]
    watched.check("token-from-file")


def test_live_tail_shows_new_spans(loaded, watched):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from tests.support import provider_with

    provider = provider_with(OTLPSpanExporter(endpoint=loaded.url + "/v1/traces", timeout=10), "live-app")
    tracer = provider.get_tracer("tests.web")

    def send(n: int) -> None:
        tracer.start_span(f"step {n}", attributes={"session.id": "sess_web_live"}).end()

    send(0)
    page = watched.page
    page.goto(loaded.url + "/#/session/sess_web_live/timeline")
    spans = page.locator(".card[data-card=spans] b")
    expect(spans).to_have_text("1")
    page.get_by_role("button", name="live: off").click()
    expect(page.get_by_role("button", name="live", exact=True)).to_have_attribute("aria-pressed", "true")
    # the tail delivers spans stored after it started: send until one shows
    deadline = time.monotonic() + 20
    n = 0
    while spans.inner_text() == "1":
        assert time.monotonic() < deadline, "no live update"
        n += 1
        send(n)
        try:
            expect(spans).not_to_have_text("1", timeout=2000)
        except AssertionError:
            continue
    expect(page.locator(".timeline .row[data-span]")).to_have_count(int(spans.inner_text()))
    provider.shutdown()
    page.get_by_role("button", name="live", exact=True).click()
    watched.check()


def test_trace_viewer_link(loaded, watched):
    page = watched.page
    session_id = loaded.session_id("Order status")
    trace_id = hashlib.sha256(session_id.encode()).hexdigest()[:32]
    page.goto(f"{loaded.url}/?jaeger=http://jaeger.test:16686/#/session/{session_id}")
    viewer = page.get_by_role("link", name="open in trace viewer ↗")
    expect(viewer).to_have_attribute("href", f"http://jaeger.test:16686/trace/{trace_id}")
    # kept (localStorage); the settings take a template too (a Grafana Explore link)
    page.goto(f"{loaded.url}/#/session/{session_id}")
    expect(viewer).to_have_attribute("href", f"http://jaeger.test:16686/trace/{trace_id}")
    page.get_by_role("button", name="Settings").click()
    dialog = page.locator("dialog.settings-dialog")
    dialog.get_by_label("trace viewer URL").fill("javascript:alert(1)")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator(".error")).to_have_text("Not an http(s) URL.")
    dialog.get_by_label("trace viewer URL").fill("https://grafana.test/explore?trace={trace_id}")
    dialog.get_by_role("button", name="Save").click()
    expect(viewer).to_have_attribute("href", f"https://grafana.test/explore?trace={trace_id}")
    page.get_by_role("link", name="Timeline").click()
    expect(page.locator(".row.trace").first.get_by_role("link", name="viewer ↗")).to_have_attribute(
        "href", re.compile(r"^https://grafana\.test/explore\?trace=[0-9a-f]{32}$"))
    watched.check()


def test_helpers_match_the_service(loaded, watched):
    """The page's SHA-256 (the session's synthetic trace id) and cost format are the service's."""
    from otel_sessions.exporter.cli.render import format_usd
    from otel_sessions.exporter.jaeger.translate import session_trace_id

    page = watched.page
    page.goto(loaded.url + "/#/sessions")
    ids = ["", "a", "sess_1", "é🙂 unicode", "x" * 55, "y" * 56, "z" * 64, "w" * 1000]
    costs = [0, 1e-12, 0.0000123, 0.00042, 0.0123, 0.5, 1.5, 1234.56789]
    got = page.evaluate("""async ([ids, costs]) => {
        const dom = await import("/web/dom.js");
        return [ids.map(dom.sessionTraceId), costs.map(dom.fmtCost)];
    }""", [ids, costs])
    assert got == [[session_trace_id(i).hex() for i in ids], [format_usd(c) for c in costs]]
    watched.check()


def _post_logs(loaded, records: list[dict]) -> None:
    """One OTLP/HTTP protobuf logs request (``POST /v1/logs``) of ``records``."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name", value=AnyValue(string_value="weather-bot"))
    scope_logs = resource_logs.scope_logs.add()
    for r in records:
        scope_logs.log_records.add(
            time_unix_nano=time.time_ns(), severity_number=r["severity"], severity_text=r["text"],
            body=AnyValue(string_value=r["body"]), trace_id=bytes.fromhex(r.get("trace_id", "")),
            span_id=bytes.fromhex(r.get("span_id", "")),
            attributes=[KeyValue(key="session.id", value=AnyValue(string_value=dataset.WEATHER_SESSION))])
    post = urllib.request.Request(loaded.url + "/v1/logs", data=request.SerializeToString(), method="POST",
                                  headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(post, timeout=10) as response:
        assert response.status == 200


def test_logs_tab(loaded, watched):
    if "/v1/sessions/{session_id}/logs" not in _routes(loaded):
        pytest.skip("this service has no GET /v1/sessions/{id}/logs yet (session logs): the Logs tab is hidden")
    with urllib.request.urlopen(f"{loaded.url}/v1/sessions/{dataset.WEATHER_SESSION}/spans", timeout=10) as response:
        spans = [sp for rs in json.load(response)["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]
    tool = next(sp for sp in spans if sp["name"] == "execute_tool get_weather")
    _post_logs(loaded, [
        {"severity": 13, "text": "WARN", "body": "retrying the weather service"},
        {"severity": 17, "text": "ERROR", "body": "weather call <b>failed</b>", "trace_id": tool["traceId"],
         "span_id": tool["spanId"]},
    ])
    page = watched.page
    page.goto(f"{loaded.url}/#/session/{dataset.WEATHER_SESSION}/logs")
    # the header counts the error records beside the failed spans, and shows the first one
    cards = page.locator(".cards")
    expect(cards.locator(".card[data-card=errors]")).to_contain_text("1 error logs")
    expect(cards.locator(".card[data-card=logs] b")).to_have_text("2")
    expect(cards.locator(".card[data-card=logs]")).to_contain_text("weather call <b>failed</b>")
    rows = page.locator("table.logs tbody tr")
    expect(rows).to_have_count(2)
    # times to the millisecond: records of one second keep a visible order
    expect(rows.first.locator("td").first).to_have_text(re.compile(r"\d{2}:\d{2}:\d{2}\.\d{3}$"))
    failed = rows.filter(has_text="weather call")
    expect(failed.locator("td.body")).to_have_text("weather call <b>failed</b>")
    expect(failed.locator(".sev")).to_have_class(re.compile(r"\berror\b"))
    page.get_by_label("minimum severity").select_option("17")
    expect(rows).to_have_count(1)
    watched.check("session-logs")
    rows.get_by_role("link", name="span ↗").click()
    expect(page.locator("aside.panel .exception")).to_contain_text(dataset.WEATHER_ERROR)
    watched.check()


def test_logs_tab_is_hidden_without_the_route(loaded, watched):
    if "/v1/sessions/{session_id}/logs" in _routes(loaded):
        pytest.skip("this service has GET /v1/sessions/{id}/logs: test_logs_tab covers the tab")
    page = watched.page
    page.goto(f"{loaded.url}/#/session/{dataset.WEATHER_SESSION}/logs")  # asked for: the conversation instead
    expect(page.locator("nav.tabs a")).to_have_text([re.compile("^Conversation"), re.compile("^Timeline"), re.compile("^Agents")])
    expect(page.locator("nav.tabs a.on")).to_have_text(re.compile("^Conversation"))
    watched.check()


def test_live_list_polls(loaded, watched):
    """Runs last: it adds a session."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from tests.support import provider_with

    page = watched.page
    page.goto(loaded.url + "/#/sessions?sort_by=last_activity")
    rows = page.locator("table.sessions tbody tr")
    rows.first.wait_for()
    before = rows.count()
    page.get_by_role("button", name="live: off").click()
    expect(page.get_by_role("button", name="live", exact=True)).to_have_attribute("aria-pressed", "true")
    provider = provider_with(OTLPSpanExporter(endpoint=loaded.url + "/v1/traces", timeout=10), "live-app")
    provider.get_tracer("tests.web").start_span("hello", attributes={"session.id": "sess_web_polled",
                                                                     "session.name": "Polled"}).end()
    provider.shutdown()
    expect(rows).to_have_count(before + 1, timeout=15_000)  # re-read every 5 s
    expect(rows.first).to_contain_text("Polled")
    watched.check()
