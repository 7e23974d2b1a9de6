"""The conversation commands against a running service: ``sessions transcript``,
``threads transcript``, ``sessions get --span`` and the new ``sessions list`` filters."""

from __future__ import annotations

import json

from otel_sessions.exporter.cli.main import main
from tests.conversation import conversation as c
from tests.conversation.builders import genai_message, span_id
from tests.conversation.live import get, post, stamp


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sessions_transcript(service, capsys):
    spans = c.genai_json()
    spans.add(20, 12_000, 13_000, name="invoke_agent billing", gen_ai__agent__name="billing")
    spans.add(21, 12_100, 12_900, parent=20, name="chat",
              gen_ai__input__messages=[genai_message("user", "Thanks!"), genai_message("user", "[b]Refund[/b]?")],
              gen_ai__output__messages=[genai_message("assistant", "Refunded.", finish="length")],
              gen_ai__response__model="gpt-4o-mini", gen_ai__usage__input_tokens=7, gen_ai__usage__output_tokens=3)
    post(service, stamp(spans.data, session__id="sess-cli", gen_ai__conversation__id="thr-cli"))
    code, out, err = _run(capsys, "sessions", "transcript", "sess-cli", "--server", service.http_url)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["system", "You", "are", "a", "weather", "bot."]
    assert lines[1].split() == ["user", "Weather", "in", "Paris?"]
    assert lines[2].split() == ["assistant"]
    assert lines[3].strip() == '→ get_weather({"city": "Paris"}) call_1'
    assert lines[4].split()[:2] == ["gpt-4o-2024-08-06", "·"]
    assert lines[5].split() == ["tool", "↩", "call_1", "sunny"]
    assert "── handoff to billing" not in out and "── agent billing" in out  # no agent before it
    assert "[b]Refund[/b]?" in out  # markup in content is printed as text
    assert "gpt-4o-mini · 7→3 tok · finish: length" in out
    code, out, _err = _run(capsys, "sessions", "transcript", "sess-cli", "--json", "--limit", "2", "--offset", "1",
                           "--server", service.http_url)
    assert code == 0 and json.loads(out) == get(service, "/v1/sessions/sess-cli/messages?limit=2&offset=1")
    code, out, _err = _run(capsys, "sessions", "transcript", "sess-cli", "--limit", "2", "--server", service.http_url)
    assert "messages 1-2; more follow (--offset 2)" in out
    code, out, _err = _run(capsys, "threads", "transcript", "thr-cli", "--server", service.http_url)
    assert code == 0 and out.splitlines()[0] == "── session sess-cli"
    code, _out, err = _run(capsys, "sessions", "transcript", "nope", "--server", service.http_url)
    assert code == 1 and "no session 'nope' (HTTP 404)" in err


def test_sessions_get_span(service, capsys):
    spans = c.genai_json()
    spans.add(30, 0, 5, name="failing", events=[("exception", {"exception.type": "KeyError",
                                                              "exception.message": "'city'",
                                                              "exception.stacktrace": "line 1\nline 2"})])
    spans.scope.spans[-1].status.code = 2
    post(service, stamp(spans.data, session__id="sess-span-cli"))
    code, out, err = _run(capsys, "sessions", "get", "sess-span-cli", "--span", span_id(30).hex(),
                          "--server", service.http_url)
    assert code == 0 and err == ""
    assert out.splitlines()[0].split() == ["failing", "unspecified", "error"]
    assert "exception KeyError: 'city'" in out and "    line 2" in out
    assert "    session.id = sess-span-cli" in out and "    service.name = app" in out
    code, out, _err = _run(capsys, "sessions", "get", "sess-span-cli", "--span", span_id(1).hex(), "--trace",
                           "0af7651916cd43dd8448eb211c80319c", "--json", "--server", service.http_url)
    assert json.loads(out)["attributes"]["gen_ai.request.model"] == "gpt-4o"
    code, _out, err = _run(capsys, "sessions", "get", "sess-span-cli", "--trace", "ab", "--server", service.http_url)
    assert code == 2 and "--trace needs --span" in err
    code, _out, err = _run(capsys, "sessions", "get", "sess-span-cli", "--span", "zz", "--server", service.http_url)
    assert code == 2 and "span_id" in err


def test_sessions_list_filters(service, capsys):
    spans = c.genai_json()
    spans.scope.spans[0].attributes.add(key="gen_ai.agent.name").value.string_value = "weather"
    post(service, stamp(spans.data, session__id="sess-filter", session__name="Weather in Paris"))
    for flags in (["--agent", "weather"], ["--tool", "get_weather"], ["--search", "PARIS"],
                  ["--environment", "none", "--search", "paris"]):
        code, out, _err = _run(capsys, "sessions", "list", *flags, "--json", "--server", service.http_url)
        ids = [s["id"] for s in json.loads(out)["data"]]
        assert code == 0 and ids == ([] if "--environment" in flags else ["sess-filter"]), flags
