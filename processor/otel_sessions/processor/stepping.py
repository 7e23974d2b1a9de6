"""Running a generator's (or async generator's) body in a context of its own.

``session(...)`` used as a decorator on a generator must keep the session (and any span the
body makes current) from one ``yield`` to the next, whichever thread or task resumes it, and
must never change the caller's context. These helpers step the generator themselves, each
step run in the one ``contextvars.Context`` made for the body. They know nothing of sessions.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any

__all__ = ["AwaitIn", "async_generator_in_context", "generator_in_context", "steps_in"]


def steps_in(context: contextvars.Context, steps: Any) -> Any:
    """Drive the generator (or awaitable iterator) ``steps``, each of its steps run in ``context``.

    What a step sets in ``context`` (a span made current, a nested session, baggage) is there
    at the next step, and nothing of it reaches the context of whoever drives this generator.
    Values, exceptions and ``close()`` are handed through unchanged; returns what ``steps``
    returns.
    """
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            if to_throw is not None:
                item = context.run(steps.throw, to_throw)
            else:
                item = context.run(steps.send, to_send)
        except StopIteration as stop:
            return stop.value
        to_send, to_throw = None, None
        try:
            to_send = yield item
        except GeneratorExit:
            context.run(steps.close)
            raise
        except BaseException as exc:  # thrown in by the caller: hand it to the body
            to_throw = exc


class AwaitIn:
    """``await AwaitIn(context, awaitable)``: ``awaitable`` with each step run in ``context``.

    Stepping the awaitable ourselves (instead of a task created with ``context=``, 3.11+)
    works on every supported Python, with any event loop, and keeps the body in the
    consumer's task, so cancelling the consumer cancels the body.
    """

    __slots__ = ("_context", "_awaitable")

    def __init__(self, context: contextvars.Context, awaitable: Any) -> None:
        self._context = context
        self._awaitable = awaitable

    def __await__(self) -> Any:
        return steps_in(self._context, self._awaitable.__await__())


def generator_in_context(fn: Callable[..., Any], make_context: Callable[[], contextvars.Context]) -> Callable[..., Any]:
    """The generator function ``fn`` with its body run in ``make_context()``, made at the first
    step (from the context of whoever takes it) and kept for every later step."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        context = make_context()
        return (yield from steps_in(context, fn(*args, **kwargs)))

    return run


def async_generator_in_context(fn: Callable[..., Any],
                               make_context: Callable[[], contextvars.Context]) -> Callable[..., Any]:
    """:func:`generator_in_context` for an async generator function: each step of the body
    (``asend``, ``athrow``, ``aclose``) is awaited in the context, in the consumer's task."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        context = make_context()
        agen = fn(*args, **kwargs)
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            try:
                step = agen.athrow(to_throw) if to_throw is not None else agen.asend(to_send)
                item = await AwaitIn(context, step)
            except StopAsyncIteration:
                return
            to_send, to_throw = None, None
            try:
                to_send = yield item
            except GeneratorExit:  # aclose(), from whichever task: the body cleans up in its context
                await AwaitIn(context, agen.aclose())
                raise
            except BaseException as exc:
                to_throw = exc

    return run
