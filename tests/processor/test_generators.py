"""``@session`` on generators: what the body sets up survives its ``yield`` s, and none of it
reaches the caller. Real TracerProvider, baggage on and off; closed from other threads and tasks."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading

import pytest
from opentelemetry import baggage, trace

from otel_sessions.processor import baggage_enabled, current_session, session
from otel_sessions.processor.attributes import SESSION_ID, THREAD_ID, USER_ID

from .conftest import Traced, make_traced


@pytest.fixture(params=[False, True], ids=["baggage-off", "baggage-on"])
def any_traced(request: pytest.FixtureRequest):
    result = make_traced(baggage=request.param)
    yield result
    result.provider.shutdown()


@pytest.fixture()
def detach_errors(caplog: pytest.LogCaptureFixture):
    """Records of OpenTelemetry's "Failed to detach context" (a token used in another context)."""
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    yield lambda: [r for r in caplog.records if r.name.startswith("opentelemetry.context")]


def _snapshot() -> dict:
    """Every context variable of the current context, by identity of the variable."""
    return dict(contextvars.copy_context())


def _body_sees(span: trace.Span, nested_id: str) -> None:
    assert trace.get_current_span() is span
    assert current_session().session_id == nested_id
    expected_baggage = nested_id if baggage_enabled() else None
    assert baggage.get_baggage(SESSION_ID) == expected_baggage


def test_sync_generator_keeps_its_span_and_nested_session_across_yields(any_traced: Traced) -> None:
    tracer = any_traced.tracer

    @session("s-gen", user_id="u-gen")
    def produce():
        with tracer.start_as_current_span("body") as span, session("nested") as nested:
            received = yield "first"
            _body_sees(span, "nested")
            tracer.start_span(f"after-{received}").end()
            yield nested.session_id
            _body_sees(span, "nested")
        assert current_session().session_id == "s-gen"  # the nested session's exit restored it
        assert trace.get_current_span().name == "caller-span"  # as at the first step
        yield "last"

    with session("caller"), tracer.start_as_current_span("caller-span") as caller_span:
        before = _snapshot()
        gen = produce()
        assert next(gen) == "first"
        assert _snapshot() == before  # nothing of the body leaked into the caller
        assert gen.send("resume") == "nested"
        assert _snapshot() == before
        assert trace.get_current_span() is caller_span and current_session().session_id == "caller"
        assert next(gen) == "last"
        assert _snapshot() == before
        with pytest.raises(StopIteration):
            next(gen)
        assert _snapshot() == before

    spans = any_traced.spans()
    after = spans["after-resume"]
    assert after.parent.span_id == spans["body"].context.span_id
    assert after.attributes[SESSION_ID] == "nested"
    assert after.attributes[USER_ID] == "u-gen"  # inherited from the decorated session
    assert spans["body"].attributes[SESSION_ID] == "s-gen"
    assert spans["body"].parent.span_id == spans["caller-span"].context.span_id


def test_async_generator_keeps_its_span_and_nested_session_across_yields(any_traced: Traced) -> None:
    tracer = any_traced.tracer

    @session("s-agen", thread_id="t-agen")
    async def produce():
        with tracer.start_as_current_span("body") as span:
            async with session("nested") as nested:
                for i in range(3):
                    await asyncio.sleep(0)
                    _body_sees(span, "nested")
                    tracer.start_span(f"step-{i}").end()
                    received = yield nested.session_id
                    assert received in (None, f"sent-{i}")
                    _body_sees(span, "nested")
        assert current_session().session_id == "s-agen"

    async def main() -> list[str]:
        out: list[str] = []
        async with session("caller"):
            with tracer.start_as_current_span("caller-span"):
                before = _snapshot()
                agen = produce()
                out.append(await agen.asend(None))
                assert _snapshot() == before
                out.append(await agen.asend("sent-0"))
                assert _snapshot() == before
                async for item in agen:
                    out.append(item)
                    assert _snapshot() == before
        return out

    assert asyncio.run(main()) == ["nested"] * 3
    spans = any_traced.spans()
    for i in range(3):
        assert spans[f"step-{i}"].parent.span_id == spans["body"].context.span_id
        assert spans[f"step-{i}"].attributes[SESSION_ID] == "nested"
        assert spans[f"step-{i}"].attributes[THREAD_ID] == "t-agen"


def test_sync_generator_closed_from_another_thread(any_traced: Traced, detach_errors) -> None:
    tracer = any_traced.tracer
    seen: list[object] = []

    @session("s-close")
    def produce():
        with tracer.start_as_current_span("body") as span, session("nested"):
            try:
                while True:
                    yield 1
            finally:
                seen.append(trace.get_current_span() is span)
                seen.append(current_session().session_id)

    gen = produce()
    next(gen)
    next(gen)
    errors: list[BaseException] = []

    def close() -> None:
        before = _snapshot()
        try:
            gen.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        assert _snapshot() == before

    closer = threading.Thread(target=close)
    closer.start()
    closer.join()
    assert errors == []
    assert seen == [True, "nested"]
    assert detach_errors() == []
    assert any_traced.spans()["body"].attributes[SESSION_ID] == "s-close"
    assert current_session() is None


def test_async_generator_closed_from_another_task(any_traced: Traced, detach_errors) -> None:
    tracer = any_traced.tracer
    seen: list[object] = []

    @session("s-aclose")
    async def produce():
        with tracer.start_as_current_span("body") as span:
            async with session("nested"):
                try:
                    while True:
                        yield 1
                finally:
                    await asyncio.sleep(0)  # awaits in its cleanup, in the closing task
                    seen.append(trace.get_current_span() is span)
                    seen.append(current_session().session_id)

    async def main() -> None:
        agen = produce()
        async with session("caller"):
            await agen.asend(None)
            await agen.asend(None)

        async def close() -> None:
            before = _snapshot()
            await agen.aclose()
            assert _snapshot() == before

        await asyncio.create_task(close())
        assert current_session() is None

    asyncio.run(main())
    assert seen == [True, "nested"]
    assert detach_errors() == []
    assert any_traced.spans()["body"].attributes[SESSION_ID] == "s-aclose"


def test_async_generator_left_unfinished_is_closed_by_the_event_loop(any_traced: Traced, detach_errors) -> None:
    tracer = any_traced.tracer
    seen: list[str] = []

    @session("s-abandoned")
    async def produce():
        with tracer.start_as_current_span("body"), session("nested"):
            try:
                while True:
                    yield 1
            finally:
                seen.append(current_session().session_id)

    async def main() -> None:
        async for _ in produce():
            break  # the generator is left suspended; asyncio closes it in a task of its own
        gc.collect()
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert seen == ["nested"]
    assert detach_errors() == []


def test_exceptions_thrown_in_reach_the_body_in_its_context(traced: Traced) -> None:
    seen: list[str] = []

    @session("s-throw")
    def produce():
        with session("nested"):
            while True:
                try:
                    yield 1
                except KeyError:
                    seen.append(current_session().session_id)

    with session("caller"):
        gen = produce()
        next(gen)
        assert gen.throw(KeyError("k")) == 1
        assert current_session().session_id == "caller"
        gen.close()
    assert seen == ["nested"]


def test_exceptions_thrown_into_an_async_generator_reach_the_body_in_its_context(traced: Traced) -> None:
    seen: list[str] = []

    @session("s-athrow")
    async def produce():
        async with session("nested"):
            while True:
                try:
                    yield 1
                except KeyError:
                    await asyncio.sleep(0)
                    seen.append(current_session().session_id)

    async def main() -> None:
        async with session("caller"):
            agen = produce()
            await agen.asend(None)
            assert await agen.athrow(KeyError("k")) == 1
            assert current_session().session_id == "caller"
            await agen.aclose()

    asyncio.run(main())
    assert seen == ["nested"]


def test_cancelling_the_consumer_cancels_the_body(traced: Traced) -> None:
    seen: list[str] = []

    @session("s-cancel")
    async def produce():
        async with session("nested"):
            try:
                yield 1
                await asyncio.sleep(10)
                yield 2
            except asyncio.CancelledError:
                seen.append("cancelled:" + current_session().session_id)
                raise

    async def consume() -> None:
        async for _ in produce():
            pass

    async def main() -> None:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert current_session() is None

    asyncio.run(main())
    assert seen == ["cancelled:nested"]
