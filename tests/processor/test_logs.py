"""Session logs: ``SessionLogProcessor`` on a real LoggerProvider (stdlib logging through the SDK's
LoggingHandler, and the Logs API directly), and ``SessionLogFilter`` with a plain Formatter."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pytest
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry._logs import LogRecord
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor

from otel_sessions.processor import (
    SessionLogFilter,
    SessionLogProcessor,
    enable_baggage,
    session,
    wrap,
)
from otel_sessions.processor.attributes import (
    SESSION_ID,
    SESSION_METADATA_PREFIX,
    SESSION_NAME,
    SESSION_PREVIOUS_ID,
    THREAD_ID,
    USER_ID,
)
from otel_sessions.processor.logs import LOG_RECORD_ATTRIBUTES

from .conftest import InMemoryLogExporter, Logged, otel_handler


def _session_part(attrs: dict[str, object]) -> dict[str, object]:
    return {
        k: v for k, v in attrs.items() if k in LOG_RECORD_ATTRIBUTES or k.startswith(SESSION_METADATA_PREFIX)
    }


# --- SessionLogProcessor ---------------------------------------------------------------------
def test_records_logged_in_a_session_carry_it_and_others_do_not(logged: Logged) -> None:
    logged.logger.info("before")
    with session(
        "sess-new",
        thread_id="thrd-1",
        user_id="u-1",
        name="Support chat",
        previous_id="sess-old",
        metadata={"plan": "pro"},
    ):
        logged.logger.info("inside")
        with session("sess-inner"):
            logged.logger.warning("nested")
    logged.logger.info("after")
    assert _session_part(logged.attrs("inside")) == {
        SESSION_ID: "sess-new",
        THREAD_ID: "thrd-1",
        USER_ID: "u-1",
        SESSION_NAME: "Support chat",
        SESSION_PREVIOUS_ID: "sess-old",
    }  # metadata stays on spans
    assert _session_part(logged.attrs("nested")) == {
        SESSION_ID: "sess-inner",
        THREAD_ID: "thrd-1",
        USER_ID: "u-1",
    }
    assert _session_part(logged.attrs("before")) == {}
    assert _session_part(logged.attrs("after")) == {}


def test_each_thread_logs_its_own_session(logged: Logged) -> None:
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        with session(f"sess-{i}", user_id=f"u-{i}"):
            barrier.wait()  # all four sessions are open at once
            logged.logger.info(f"thread-{i}")
            barrier.wait()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with session("sess-parent"):
        worker = threading.Thread(target=wrap(lambda: logged.logger.info("wrapped")))
        worker.start()
        worker.join()
    for i in range(4):
        attrs = logged.attrs(f"thread-{i}")
        assert (attrs[SESSION_ID], attrs[USER_ID]) == (f"sess-{i}", f"u-{i}")
    assert logged.attrs("wrapped")[SESSION_ID] == "sess-parent"


def test_each_asyncio_task_logs_its_own_session(logged: Logged) -> None:
    async def turn(i: int) -> None:
        async with session(f"sess-{i}"):
            for step in range(3):
                await asyncio.sleep(0)  # the other tasks run in between
                logged.logger.info(f"task-{i}-{step}")

    async def main() -> None:
        await asyncio.gather(*(turn(i) for i in range(3)))
        logged.logger.info("task-none")

    asyncio.run(main())
    for i in range(3):
        for step in range(3):
            assert logged.attrs(f"task-{i}-{step}")[SESSION_ID] == f"sess-{i}"
    assert SESSION_ID not in logged.attrs("task-none")


def test_attributes_a_record_already_carries_win(logged: Logged) -> None:
    with session("sess-active", thread_id="thrd-active"):
        logged.logger.info("own", extra={SESSION_ID: "sess-mine"})
        logged.provider.get_logger("genai-events").emit(
            LogRecord(body="event", attributes={USER_ID: "u-event", "gen_ai.system": "openai"})
        )
    assert logged.attrs("own")[SESSION_ID] == "sess-mine"
    assert logged.attrs("own")[THREAD_ID] == "thrd-active"
    event = logged.attrs("event")  # emitted through the Logs API, as GenAI instrumentations do
    assert (event[SESSION_ID], event[USER_ID], event["gen_ai.system"]) == ("sess-active", "u-event", "openai")


def test_added_before_a_batch_processor_every_exported_record_carries_the_session() -> None:
    provider = LoggerProvider()
    provider.add_log_record_processor(SessionLogProcessor())
    exporter = InMemoryLogExporter()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    with session("sess-batch"):
        for i in range(50):
            provider.get_logger("app").emit(LogRecord(body=f"r-{i}"))
    provider.force_flush()
    records = exporter.get_finished_logs()
    assert len(records) == 50
    assert all(r.log_record.attributes[SESSION_ID] == "sess-batch" for r in records)
    provider.shutdown()


def test_with_baggage_a_downstream_service_logs_the_incoming_session(logged: Logged) -> None:
    incoming = propagate.extract({"baggage": "session.id=sess-up,user.id=u-up"})
    token = otel_context.attach(incoming)
    try:
        logged.logger.info("baggage-off")
        enable_baggage(True)
        logged.logger.info("baggage-on")
    finally:
        otel_context.detach(token)
    assert SESSION_ID not in logged.attrs("baggage-off")  # baggage is opt-in
    assert _session_part(logged.attrs("baggage-on")) == {SESSION_ID: "sess-up", USER_ID: "u-up"}


def _broken_records() -> list[object]:
    frozen = ReadWriteLogRecord(LogRecord(body="frozen"))
    frozen.log_record.attributes = BoundedAttributes(attributes={"a": 1}, immutable=True)  # refuses writes

    class Exploding:
        @property
        def log_record(self) -> object:
            raise RuntimeError("boom")

    return [None, object(), "text", frozen, Exploding()]


@pytest.mark.parametrize("record", _broken_records(), ids=["none", "object", "str", "frozen", "raising"])
def test_a_broken_record_never_raises(record: object, caplog: pytest.LogCaptureFixture) -> None:
    processor = SessionLogProcessor()
    with caplog.at_level(logging.DEBUG, logger="otel_sessions"), session("sess-broken"):
        processor.on_emit(record)
        processor.emit(record)  # the older SDKs' name
    assert all(r.levelno <= logging.DEBUG for r in caplog.records)
    assert processor.force_flush() is True
    processor.shutdown()


class _Freezer(LogRecordProcessor):
    """A processor that makes every record's attributes read-only (as a stricter pipeline might)."""

    def on_emit(self, log_record) -> None:  # noqa: ANN001
        record = log_record.log_record
        record.attributes = BoundedAttributes(attributes=dict(record.attributes or {}), immutable=True)

    emit = on_emit

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_a_failure_reported_through_an_otel_handler_does_not_loop() -> None:
    provider = LoggerProvider()
    provider.add_log_record_processor(_Freezer())  # so SessionLogProcessor fails on every record
    provider.add_log_record_processor(SessionLogProcessor())
    exporter = InMemoryLogExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = otel_handler(provider)
    package = logging.getLogger("otel_sessions")
    level, handlers = package.level, list(package.handlers)
    package.setLevel(logging.DEBUG)
    package.addHandler(handler)  # the processor's own debug lines come back to it as OTel records
    try:
        with session("sess-loop"):
            provider.get_logger("app").emit(LogRecord(body="app record"))
    finally:
        package.setLevel(level)
        package.handlers[:] = handlers
        provider.shutdown()
    bodies = [str(r.log_record.body) for r in exporter.get_finished_logs()]
    assert bodies[-1] == "app record"  # exported, unstamped, and the app went on
    assert len(bodies) == 2 and "failed" in bodies[0]  # one debug report, not one per report


# --- SessionLogFilter ------------------------------------------------------------------------
@pytest.fixture()
def formatted() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(session_id)s %(thread_id)s %(user_id)s %(message)s"))
    handler.addFilter(SessionLogFilter())
    logger = logging.getLogger("tests.logs.filter")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.handlers[:] = [handler]
    yield logger, stream
    logger.handlers.clear()


def test_filter_puts_the_session_in_format_strings(formatted: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = formatted
    logger.info("outside")
    with session("sess-f", thread_id="thrd-f", user_id="u-f"):
        logger.info("inside")
        with session("sess-nouser", thread_id="thrd-n", user_id=None):
            logger.info("no user of its own")  # inherits the outer user
        logger.info("given", extra={"session_id": "sess-given"})
    with session("sess-anon", thread_id="thrd-a"):
        logger.info("anonymous")
    assert stream.getvalue().splitlines() == [
        "   outside",
        "sess-f thrd-f u-f inside",
        "sess-nouser thrd-n u-f no user of its own",
        "sess-given thrd-f u-f given",
        "sess-anon thrd-a  anonymous",
    ]


def test_filter_on_a_logger_always_passes_records_and_never_raises() -> None:
    session_filter = SessionLogFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    assert session_filter.filter(record) is True
    assert (record.session_id, record.thread_id, record.user_id) == ("", "", "")
    assert session_filter.filter(object()) is True  # type: ignore[arg-type]  # not a LogRecord: no error
    logger = logging.getLogger("tests.logs.filter-on-logger")
    logger.addFilter(session_filter)
    try:
        with session("sess-l") as active:
            seen = logger.makeRecord("x", logging.INFO, __file__, 1, "msg", None, None)
            assert logger.filter(seen)
        assert (seen.session_id, seen.thread_id) == ("sess-l", active.thread_id)
    finally:
        logger.removeFilter(session_filter)
