"""The context API with a real TracerProvider: threads, tasks, nesting, decorators, bad ids."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_sessions.processor import current_session, new_session_id, new_thread_id, session, wrap
from otel_sessions.processor.attributes import (
    SESSION_ID,
    SESSION_METADATA_PREFIX,
    SESSION_NAME,
    SESSION_PREVIOUS_ID,
    THREAD_ID,
    USER_ID,
)

from .conftest import Traced

SESSION_RE = re.compile(r"^sess_[0-9a-f]{32}$")
THREAD_RE = re.compile(r"^thrd_[0-9a-f]{32}$")


def test_generated_ids_have_the_prefixes_and_32_hex() -> None:
    assert SESSION_RE.match(new_session_id())
    assert THREAD_RE.match(new_thread_id())
    assert new_session_id() != new_session_id()


def test_every_span_inside_carries_the_ids(traced: Traced) -> None:
    with (
        session(user_id="u-123", name="Support chat", metadata={"plan": "pro", "seats": 3}) as s,
        traced.tracer.start_as_current_span("root"),
    ):
        traced.tracer.start_span("child").end()
    assert SESSION_RE.match(s.session_id) and THREAD_RE.match(s.thread_id)
    for name in ("root", "child"):
        attrs = traced.attrs(name)
        assert attrs[SESSION_ID] == s.session_id
        assert attrs[THREAD_ID] == s.thread_id
        assert attrs[USER_ID] == "u-123"
        assert attrs[SESSION_NAME] == "Support chat"
        assert attrs[SESSION_METADATA_PREFIX + "plan"] == "pro"
        assert attrs[SESSION_METADATA_PREFIX + "seats"] == 3


def test_given_ids_are_used_as_is_and_nothing_outside(traced: Traced) -> None:
    with session("my-session", thread_id="my-thread"):
        traced.tracer.start_span("in").end()
    traced.tracer.start_span("out").end()
    assert traced.attrs("in") == {SESSION_ID: "my-session", THREAD_ID: "my-thread"}
    assert traced.attrs("out") == {}
    assert current_session() is None


def test_nested_inner_wins_and_outer_is_restored(traced: Traced) -> None:
    with session("outer", thread_id="t", user_id="u", name="outer name") as outer:
        with session("inner", name="inner name") as inner:
            assert current_session() is inner
            traced.tracer.start_span("inner").end()
        assert current_session() is outer
        traced.tracer.start_span("after").end()
    assert traced.attrs("inner") == {SESSION_ID: "inner", THREAD_ID: "t", USER_ID: "u", SESSION_NAME: "inner name"}
    assert traced.attrs("after")[SESSION_ID] == "outer"
    assert traced.attrs("after")[SESSION_NAME] == "outer name"


def test_exception_inside_propagates_and_restores(traced: Traced) -> None:
    with session("outer"):
        with pytest.raises(ZeroDivisionError), session("inner"):
            traced.tracer.start_span("boom").end()
            1 / 0  # noqa: B018
        assert current_session().session_id == "outer"
    assert current_session() is None
    assert traced.attrs("boom")[SESSION_ID] == "inner"


def test_threads_via_wrap_and_executors(traced: Traced) -> None:
    def work(name: str) -> str | None:
        traced.tracer.start_span(name).end()
        active = current_session()
        return active.session_id if active else None

    with session("s-threads"):
        plain = threading.Thread(target=work, args=("plain",))
        plain.start()
        plain.join()
        wrapped = threading.Thread(target=wrap(work), args=("wrapped",))
        wrapped.start()
        wrapped.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            task = wrap(work)  # one wrapped function, run in two threads at once
            results = list(pool.map(task, ["pool-1", "pool-2"]))
        ctx = contextvars.copy_context()
    assert results == ["s-threads", "s-threads"]
    assert SESSION_ID not in traced.attrs("plain")  # a bare Thread starts with an empty context
    for name in ("wrapped", "pool-1", "pool-2"):
        assert traced.attrs(name)[SESSION_ID] == "s-threads"
    assert ctx.run(current_session).session_id == "s-threads"  # contextvars copies keep it


def test_asyncio_tasks_and_to_thread(traced: Traced) -> None:
    async def child(name: str) -> None:
        await asyncio.sleep(0)
        traced.tracer.start_span(name).end()

    async def one(session_id: str) -> None:
        async with session(session_id):
            await asyncio.gather(child(f"{session_id}-a"), asyncio.create_task(child(f"{session_id}-b")))
            await asyncio.to_thread(lambda: traced.tracer.start_span(f"{session_id}-thread").end())

    async def main() -> None:
        await asyncio.gather(one("s1"), one("s2"))  # interleaved sessions do not leak
        assert current_session() is None

    asyncio.run(main())
    for sid in ("s1", "s2"):
        for suffix in ("a", "b", "thread"):
            assert traced.attrs(f"{sid}-{suffix}")[SESSION_ID] == sid


def test_decorator_on_sync_function_makes_a_session_per_call(traced: Traced) -> None:
    @session(user_id="u-dec")
    def handle(name: str) -> str:
        traced.tracer.start_span(name).end()
        return current_session().session_id

    first, second = handle("one"), handle("two")
    assert first != second and SESSION_RE.match(first)
    assert traced.attrs("one")[SESSION_ID] == first
    assert traced.attrs("two")[USER_ID] == "u-dec"
    assert handle.__name__ == "handle"
    assert current_session() is None


def test_decorator_on_async_function(traced: Traced) -> None:
    @session("s-async", user_id="u")
    async def handle() -> str:
        await asyncio.sleep(0)
        traced.tracer.start_span("async").end()
        return current_session().session_id

    assert asyncio.run(handle()) == "s-async"
    assert traced.attrs("async")[SESSION_ID] == "s-async"


def test_decorator_on_generator_active_only_inside_its_body(traced: Traced) -> None:
    @session("s-gen")
    def produce():
        for i in range(2):
            traced.tracer.start_span(f"gen-{i}").end()
            received = yield current_session().session_id
            assert received == f"sent-{i}" or received is None

    with session("caller"):
        gen = produce()
        assert next(gen) == "s-gen"
        assert current_session().session_id == "caller"  # between yields: the caller's session
        assert gen.send("sent-0") == "s-gen"
        with pytest.raises(StopIteration):
            gen.send("sent-1")
    assert traced.attrs("gen-1")[SESSION_ID] == "s-gen"


def test_decorator_on_generator_close_and_throw() -> None:
    seen: list[str] = []

    @session("s-close")
    def produce():
        try:
            while True:
                try:
                    yield 1
                except KeyError:
                    seen.append("caught:" + current_session().session_id)
        finally:
            seen.append("closed:" + current_session().session_id)

    gen = produce()
    next(gen)
    assert gen.throw(KeyError("k")) == 1
    gen.close()
    assert seen == ["caught:s-close", "closed:s-close"]


def test_decorator_on_async_generator(traced: Traced) -> None:
    @session("s-agen")
    async def produce():
        for i in range(3):
            await asyncio.sleep(0)
            traced.tracer.start_span(f"agen-{i}").end()
            yield current_session().session_id

    async def main() -> list[str]:
        async with session("caller"):
            out = []
            async for item in produce():
                out.append(item)
                assert current_session().session_id == "caller"
            return out

    assert asyncio.run(main()) == ["s-agen"] * 3
    assert traced.attrs("agen-2")[SESSION_ID] == "s-agen"


def test_invalid_ids_one_warning_never_raises(traced: Traced, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="otel_sessions"),
        session("bad\nid", thread_id="x" * 300, user_id="\x00") as s,
    ):
        traced.tracer.start_span("bad").end()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "session_id" in warnings[0].getMessage() and "user_id" in warnings[0].getMessage()
    assert SESSION_RE.match(s.session_id) and THREAD_RE.match(s.thread_id)
    attrs = traced.attrs("bad")
    assert attrs[SESSION_ID] == s.session_id and USER_ID not in attrs


@pytest.mark.parametrize("bad", [123, b"bytes", "", "   ", "a\x7fb"])
def test_non_string_and_unprintable_ids_are_dropped(bad: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_sessions"), session(bad, user_id=bad) as s:  # type: ignore[arg-type]
        assert SESSION_RE.match(s.session_id) and s.user_id is None
    assert len(caplog.records) == 1


def test_metadata_values_are_capped_and_bad_keys_dropped(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="otel_sessions"),
        session(metadata={"long": "x" * 5000, "obj": [1, 2], "": "empty key", 7: "int key"}) as s,
    ):
        assert s.metadata == {"long": "x" * 1024, "obj": "[1, 2]"}
    assert len(caplog.records) == 1


def test_current_session_is_none_outside_and_attributes_read_only() -> None:
    assert current_session() is None
    with session("s") as s:
        assert current_session() is s
        with pytest.raises(TypeError):
            s.attributes[SESSION_ID] = "other"  # type: ignore[index]


def test_one_session_object_entered_by_concurrent_tasks(traced: Traced) -> None:
    shared = session(user_id="u-shared")

    async def turn(name: str) -> str:
        async with shared as mine:
            await asyncio.sleep(0)  # the other task enters and leaves meanwhile
            traced.tracer.start_span(name).end()
            assert current_session() is mine
        assert current_session() is None
        return mine.session_id

    async def main() -> list[str]:
        return await asyncio.gather(turn("t1"), turn("t2"))

    first, second = asyncio.run(main())
    assert first != second
    assert traced.attrs("t1")[SESSION_ID] == first and traced.attrs("t2")[SESSION_ID] == second


def test_previous_id_is_stamped_on_the_sessions_spans(traced: Traced) -> None:
    with session("sess_new", previous_id="sess_old") as s:
        traced.tracer.start_span("follow-up").end()
        traced.tracer.start_span("own", attributes={SESSION_PREVIOUS_ID: "sess_mine"}).end()
    traced.tracer.start_span("outside").end()
    assert s.previous_id == "sess_old"
    assert s.attributes[SESSION_PREVIOUS_ID] == "sess_old"
    assert traced.attrs("follow-up") == {SESSION_ID: "sess_new", THREAD_ID: s.thread_id, SESSION_PREVIOUS_ID: "sess_old"}
    assert traced.attrs("own")[SESSION_PREVIOUS_ID] == "sess_mine"  # the first value wins
    assert traced.attrs("outside") == {}


def test_previous_id_through_the_decorator_and_not_inherited_by_nested_sessions(traced: Traced) -> None:
    @session(previous_id="sess_before")
    def handle() -> None:
        traced.tracer.start_span("decorated").end()
        with session("inner"):
            traced.tracer.start_span("inner").end()

    handle()
    assert traced.attrs("decorated")[SESSION_PREVIOUS_ID] == "sess_before"
    assert SESSION_PREVIOUS_ID not in traced.attrs("inner")  # another session, not a follow-up
    with session("plain") as plain:
        assert plain.previous_id is None and SESSION_PREVIOUS_ID not in plain.attributes


def test_invalid_previous_id_is_dropped_with_the_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_sessions"), session("s", previous_id="bad\nid") as s:
        assert s.previous_id is None and SESSION_PREVIOUS_ID not in s.attributes
    assert len(caplog.records) == 1 and "previous_id" in caplog.records[0].getMessage()
