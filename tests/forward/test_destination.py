"""A destination's queue, worker and retry loop, over a fake transport with scripted outcomes.

:class:`FakeDestination` subclasses :class:`Destination` and answers each try with the next
step of its script: an :class:`Outcome`, or a coroutine function (to hold, time out or fail).
Real asyncio and real metrics; each destination has its own URL, so its counters start at 0."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import pytest
from prometheus_client import REGISTRY

from otel_sessions.exporter.forward.destinations import Destination, GrpcDestination, HttpDestination
from otel_sessions.exporter.forward.enrichment import Item, SessionInfo
from otel_sessions.exporter.forward.retry import Outcome, transport_error_outcome
from otel_sessions.exporter.ingest.groups import Batch
from otel_sessions.exporter.ingest.ingestor import StoredBatch

OK = Outcome(ok=True)
PERMANENT = Outcome(ok=False, retryable=False, message="INVALID_ARGUMENT: bad request")

Step = Outcome | Callable[[bytes, float], Awaitable[Outcome]]
_urls = itertools.count()


def retryable(after: float | None = None) -> Outcome:
    return Outcome(ok=False, retryable=True, retry_after=after, message="UNAVAILABLE: down")


async def times_out(payload: bytes, timeout: float) -> Outcome:
    """A downstream that does not answer: the try takes its whole timeout."""
    await asyncio.sleep(timeout)
    return transport_error_outcome(asyncio.TimeoutError())


async def hangs(payload: bytes, timeout: float) -> Outcome:
    """A transport that ignores its timeout."""
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def breaks(payload: bytes, timeout: float) -> Outcome:
    raise RuntimeError("bug in the transport")


class Try(NamedTuple):
    at: float  # loop time
    payload: bytes
    timeout: float


class FakeDestination(Destination):
    def __init__(self, *script: Step, then: Step = OK, **options) -> None:
        settings = {"max_queued_spans": 1000, "retry_max_s": 5.0, "timeout_s": 1.0,
                    "backoff_initial_s": 0.01, "backoff_max_s": 0.02, **options}
        super().__init__(f"fake://destination-{next(_urls)}", sessions=SessionInfo(None), **settings)
        self.script = list(script)
        self.then = then
        self.tries: list[Try] = []
        self.opened = self.closed = False

    async def _open(self) -> None:
        self.opened = True

    async def _close(self) -> None:
        self.closed = True

    async def _export(self, payload: bytes, timeout: float) -> Outcome:
        self.tries.append(Try(asyncio.get_running_loop().time(), payload, timeout))
        step = self.script.pop(0) if self.script else self.then
        return step if isinstance(step, Outcome) else await step(payload, timeout)

    def gaps(self) -> list[float]:
        return [b.at - a.at for a, b in zip(self.tries, self.tries[1:])]

    def sent(self) -> float:
        return _sample("otel_sessions_forward_spans_sent_total", destination=self.url)

    def dropped(self, reason: str) -> float:
        return _sample("otel_sessions_forward_spans_dropped_total", destination=self.url, reason=reason)

    def retries(self) -> float:
        return _sample("otel_sessions_forward_retries_total", destination=self.url)

    def queued(self) -> float:
        return _sample("otel_sessions_forward_queue_spans", destination=self.url)

    def all_dropped(self) -> dict[str, float]:
        reasons = ("queue_full", "rejected", "retries_exhausted", "shutdown")
        return {reason: self.dropped(reason) for reason in reasons if self.dropped(reason)}


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def item(spans: int, body: bytes | None = None) -> Item:
    """A stored request of ``spans`` spans that names no session (so it is sent as it is)."""
    return Item(StoredBatch(body if body is not None else b"request of %d spans" % spans, Batch(span_count=spans)))


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not predicate():
        assert loop.time() < give_up, "condition not reached"
        await asyncio.sleep(0.002)


async def stop_now(destination: Destination, grace: float = 3.0) -> float:
    """Stop with ``grace`` seconds to drain; returns how long stopping took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await destination.stop(started + grace)
    return loop.time() - started


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


# --- sending ---------------------------------------------------------------------------------
def test_the_sent_counter_counts_spans_of_acknowledged_requests():
    async def scenario():
        destination = FakeDestination()
        assert destination.offer(item(3, b"first")) and destination.offer(item(2, b"second"))
        assert destination.queued() == 5
        await destination.start()
        assert destination.opened
        await until(lambda: destination.sent() == 5)
        assert [t.payload for t in destination.tries] == [b"first", b"second"]  # in order, as they came
        assert destination.queued() == 0 and destination.queued_spans == 0
        assert destination.retries() == 0 and destination.all_dropped() == {}
        await stop_now(destination)
        assert destination.closed

    run(scenario)


def test_spans_refused_as_partial_success_count_as_rejected():
    async def scenario():
        destination = FakeDestination(Outcome(ok=True, rejected_spans=2, message="2 spans too old"))
        destination.offer(item(5))
        await destination.start()
        await until(lambda: destination.sent() == 3)
        assert destination.all_dropped() == {"rejected": 2}
        await stop_now(destination)

    run(scenario)


def test_each_try_is_bounded_by_the_timeout():
    async def scenario():
        destination = FakeDestination(times_out, times_out, timeout_s=0.05, retry_max_s=10)
        destination.offer(item(4))
        await destination.start()
        await until(lambda: destination.sent() == 4)
        assert [t.timeout for t in destination.tries] == [0.05, 0.05, 0.05]
        assert destination.retries() == 2
        await stop_now(destination)

    run(scenario)


# --- retrying --------------------------------------------------------------------------------
def test_a_retryable_outcome_is_tried_again_after_the_delay_the_server_named():
    async def scenario():
        # the backoff would wait 10 s: the test ends in time only if the named delays are used
        destination = FakeDestination(retryable(after=0.1), retryable(after=0.05),
                                      backoff_initial_s=10, backoff_max_s=10)
        destination.offer(item(3, b"payload"))
        await destination.start()
        await until(lambda: destination.sent() == 3)
        assert len(destination.tries) == 3
        assert {t.payload for t in destination.tries} == {b"payload"}  # the same request each time
        first, second = destination.gaps()
        assert 0.1 <= first < 5 and 0.05 <= second < 5
        assert destination.retries() == 2 and destination.all_dropped() == {}
        await stop_now(destination)

    run(scenario)


def test_without_a_named_delay_the_wait_backs_off_exponentially():
    async def scenario():
        destination = FakeDestination(*[retryable()] * 3, backoff_initial_s=0.04, backoff_max_s=0.1)
        destination.offer(item(1))
        await destination.start()
        await until(lambda: destination.sent() == 1)
        # 0.04, 0.08, then 0.1 (the cap), each at least 0.8 times that (jitter)
        gaps = destination.gaps()
        assert len(gaps) == 3
        for gap, backoff in zip(gaps, (0.04, 0.08, 0.1)):
            assert gap >= 0.8 * backoff - 0.001
        assert destination.retries() == 3
        await stop_now(destination)

    run(scenario)


def test_a_permanent_error_drops_the_batch_and_the_next_one_goes_on():
    async def scenario():
        destination = FakeDestination(PERMANENT)
        destination.offer(item(3, b"refused"))
        destination.offer(item(2, b"taken"))
        await destination.start()
        await until(lambda: destination.sent() == 2)
        assert [t.payload for t in destination.tries] == [b"refused", b"taken"]  # no second try
        assert destination.all_dropped() == {"rejected": 3}
        assert destination.retries() == 0
        await stop_now(destination)

    run(scenario)


def test_a_failing_transport_drops_the_batch_but_not_the_worker():
    async def scenario():
        destination = FakeDestination(breaks)
        destination.offer(item(3))
        destination.offer(item(2))
        await destination.start()
        await until(lambda: destination.sent() == 2)
        assert destination.all_dropped() == {"rejected": 3}
        await stop_now(destination)

    run(scenario)


def test_retry_max_gives_the_batch_up():
    async def scenario():
        destination = FakeDestination(then=retryable(), retry_max_s=0.3, backoff_initial_s=0.05,
                                      backoff_max_s=0.05)
        destination.offer(item(4))
        await destination.start()
        await until(lambda: destination.dropped("retries_exhausted") == 4)
        tries = destination.tries
        assert len(tries) >= 2
        assert tries[-1].at - tries[0].at <= 0.3 + 0.1  # no try starts after retry max (some slack)
        assert destination.retries() == len(tries) - 1
        assert destination.sent() == 0 and destination.all_dropped() == {"retries_exhausted": 4}
        # the worker goes on with the next batch
        destination.then = OK
        destination.offer(item(2))
        await until(lambda: destination.sent() == 2)
        await stop_now(destination)

    run(scenario)


def test_a_named_delay_beyond_retry_max_gives_up_at_once():
    async def scenario():
        destination = FakeDestination(retryable(after=60), retry_max_s=1)
        destination.offer(item(2))
        await destination.start()
        await until(lambda: destination.dropped("retries_exhausted") == 2, timeout=0.5)
        assert len(destination.tries) == 1 and destination.retries() == 0
        await stop_now(destination)

    run(scenario)


def test_timeouts_are_retried_within_retry_max():
    async def scenario():
        destination = FakeDestination(then=times_out, timeout_s=10, retry_max_s=0.3)
        destination.offer(item(3))
        await destination.start()
        await until(lambda: destination.dropped("retries_exhausted") == 3)
        # the try gets the time left until retry max, not the full 10 s timeout
        assert 0.2 < destination.tries[0].timeout <= 0.3
        assert destination.sent() == 0
        await stop_now(destination)

    run(scenario)


# --- the queue bound ---------------------------------------------------------------------------
def test_a_full_queue_drops_new_batches():
    async def scenario():
        release = asyncio.Event()

        async def held(payload: bytes, timeout: float) -> Outcome:
            await release.wait()
            return OK

        destination = FakeDestination(held, max_queued_spans=5)
        assert destination.offer(item(3, b"in flight"))
        await destination.start()
        await until(lambda: len(destination.tries) == 1)
        assert destination.queued() == 3  # the batch being sent still counts
        assert not destination.offer(item(3, b"too many"))
        assert destination.all_dropped() == {"queue_full": 3}
        assert destination.offer(item(2, b"fits"))
        assert destination.queued() == 5
        release.set()
        await until(lambda: destination.sent() == 5)
        assert [t.payload for t in destination.tries] == [b"in flight", b"fits"]
        assert destination.queued() == 0
        await stop_now(destination)

    run(scenario)


def test_reserved_spans_count_toward_the_bound_until_offered():
    async def scenario():
        destination = FakeDestination(max_queued_spans=5)
        assert destination.reserve(3)  # held by the join wait: room taken, nothing to send yet
        assert destination.queued() == 3
        assert not destination.reserve(3)  # no room: dropped at once
        assert not destination.offer(item(3, b"too many"))
        assert destination.all_dropped() == {"queue_full": 6}
        assert destination.offer(item(2, b"fits"))
        await destination.start()
        await until(lambda: destination.sent() == 2)
        assert destination.queued() == 3  # still reserved
        assert destination.offer(item(3, b"released"), reserved=True)  # fits: its room was taken
        await until(lambda: destination.sent() == 5)
        assert destination.queued() == 0
        assert [t.payload for t in destination.tries] == [b"fits", b"released"]
        destination.reserve(1)
        await stop_now(destination)
        assert not destination.offer(item(1, b"late"), reserved=True)  # stopped: dropped, room given back
        assert destination.all_dropped() == {"queue_full": 6, "shutdown": 1}
        assert destination.queued() == 0

    run(scenario)


# --- stopping ----------------------------------------------------------------------------------
def test_stop_drains_the_queue():
    async def scenario():
        async def slow(payload: bytes, timeout: float) -> Outcome:
            await asyncio.sleep(0.02)
            return OK

        destination = FakeDestination(then=slow)
        for spans in (1, 2, 3, 4):
            destination.offer(item(spans))
        await destination.start()
        took = await stop_now(destination, grace=5)
        assert took < 2
        assert destination.sent() == 10 and destination.all_dropped() == {}
        assert destination.queued() == 0 and destination.closed
        assert not destination.offer(item(5))  # stopped: nothing more is taken
        assert destination.all_dropped() == {"shutdown": 5}

    run(scenario)


def test_stop_drops_what_is_left_at_the_deadline():
    async def scenario():
        destination = FakeDestination(then=retryable(after=0.05), retry_max_s=60)
        destination.offer(item(2))
        destination.offer(item(3))
        await destination.start()
        await until(lambda: len(destination.tries) >= 2)  # retrying the first batch
        took = await stop_now(destination, grace=0.3)
        assert 0.2 < took < 1.5
        assert destination.all_dropped() == {"shutdown": 5}  # the batch being retried and the one behind
        assert destination.sent() == 0 and destination.queued() == 0 and destination.closed

    run(scenario)


def test_stop_wakes_a_worker_waiting_to_retry():
    async def scenario():
        destination = FakeDestination(then=retryable(after=30), retry_max_s=120)
        destination.offer(item(2))
        await destination.start()
        await until(lambda: len(destination.tries) == 1)
        took = await stop_now(destination, grace=5)
        assert took < 2  # neither the 30 s the server asked for nor the grace period
        # woken, it tries once more; the server's delay ends past the deadline: given up
        assert len(destination.tries) == 2
        assert destination.all_dropped() == {"shutdown": 2}

    run(scenario)


def test_stop_cancels_a_try_that_outlives_the_deadline():
    async def scenario():
        destination = FakeDestination(hangs)
        destination.offer(item(2))
        destination.offer(item(1))
        await destination.start()
        await until(lambda: len(destination.tries) == 1)
        took = await stop_now(destination, grace=0.2)
        assert 0.15 < took < 1.5
        assert destination.all_dropped() == {"shutdown": 3} and destination.closed

    run(scenario)


# --- transports ----------------------------------------------------------------------------------
@pytest.mark.parametrize("url, transport", [
    ("grpc://collector:4317", GrpcDestination),
    ("http://collector:4318", HttpDestination),
    ("https://collector/v1/traces", HttpDestination),
])
def test_the_url_scheme_picks_the_transport(url, transport):
    async def scenario():
        destination = Destination.create(url, max_queued_spans=10, retry_max_s=1, timeout_s=1,
                                         sessions=SessionInfo(None))
        assert type(destination) is transport

    run(scenario)
