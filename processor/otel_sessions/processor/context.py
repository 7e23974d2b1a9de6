"""The session context API: ``session(...)``, ``current_session()`` and ``wrap()``.

The active session lives in a ``contextvars.ContextVar``, so it follows the code the way
OpenTelemetry's own context does: into asyncio tasks (each task starts with a copy of its
creator's context), into ``asyncio.to_thread`` and ``loop.run_in_executor(None, wrap(fn))``,
and into threads started with a function passed through ``wrap()``. A plain
``threading.Thread(target=fn)`` starts with an empty context: use ``wrap(fn)``.

Nested sessions: the inner one is active inside, the outer one is restored on exit. An inner
session given no ``thread_id`` or ``user_id`` takes them from the outer session; it always
gets its own session id (given, or generated), and no ``previous_id`` unless given.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any, TypeVar

from opentelemetry import context as otel_context

from .attributes import (
    MAX_METADATA_VALUE_LENGTH,
    SESSION_ID,
    SESSION_METADATA_PREFIX,
    SESSION_NAME,
    SESSION_PREVIOUS_ID,
    THREAD_ID,
    USER_ID,
    is_valid_id,
)
from .ids import new_session_id, new_thread_id
from .propagation import baggage_enabled, context_with_session_baggage, ids_from_baggage
from .stepping import async_generator_in_context, generator_in_context

__all__ = ["SessionContext", "current_session", "session", "wrap"]

_logger = logging.getLogger(__name__)

AttributeValue = str | bool | int | float
F = TypeVar("F", bound=Callable[..., Any])


class SessionContext:
    """The ids of an active session (read-only): what ``current_session()`` returns.

    ``attributes`` is the mapping every span started inside the session is stamped with
    (canonical names; ``user.id``, ``session.name`` and ``session.previous_id`` only when
    set). It is computed once, when the session is entered, so the span processor does no
    per-span work to build it.

    ``previous_id`` is the id of the session this one follows on from (a follow-up
    conversation pointing at the one before), stamped as ``session.previous_id``; the
    service answers it as the session's ``previous_id``.
    """

    __slots__ = (
        "session_id",
        "thread_id",
        "user_id",
        "name",
        "metadata",
        "previous_id",
        "_attributes",
        "_longest",
    )

    session_id: str
    thread_id: str
    user_id: str | None
    name: str | None
    metadata: Mapping[str, AttributeValue]
    previous_id: str | None

    def __init__(
        self,
        session_id: str,
        thread_id: str,
        user_id: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, AttributeValue] | None = None,
        previous_id: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.thread_id = thread_id
        self.user_id = user_id
        self.name = name
        self.metadata = MappingProxyType(dict(metadata or {}))
        self.previous_id = previous_id
        attributes: dict[str, AttributeValue] = {SESSION_ID: session_id, THREAD_ID: thread_id}
        if user_id is not None:
            attributes[USER_ID] = user_id
        if name is not None:
            attributes[SESSION_NAME] = name
        if previous_id is not None:
            attributes[SESSION_PREVIOUS_ID] = previous_id
        for key, value in self.metadata.items():
            attributes[SESSION_METADATA_PREFIX + key] = value
        self._attributes = attributes
        #: Longest string value: lets the processor skip the SDK's per-value length checks.
        self._longest = max((len(v) for v in attributes.values() if isinstance(v, str)), default=0)

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        """Span attributes of this session, canonical names (a read-only view)."""
        return MappingProxyType(self._attributes)

    def __repr__(self) -> str:
        return (
            f"SessionContext(session_id={self.session_id!r}, thread_id={self.thread_id!r}, "
            f"user_id={self.user_id!r}, name={self.name!r}, metadata={dict(self.metadata)!r}, "
            f"previous_id={self.previous_id!r})"
        )


_ACTIVE: ContextVar[SessionContext | None] = ContextVar("otel_sessions_active_session", default=None)


def current_session() -> SessionContext | None:
    """The active session, or None.

    With baggage enabled and no session entered in this process, a session carried in
    by W3C baggage (a downstream service) is returned, with an empty ``thread_id`` when the
    baggage has none.
    """
    active = _ACTIVE.get()
    if active is not None or not baggage_enabled():
        return active
    ids = ids_from_baggage()
    if SESSION_ID not in ids:
        return None
    return SessionContext(ids[SESSION_ID], ids.get(THREAD_ID, ""), ids.get(USER_ID), ids.get(SESSION_NAME))


# --- arguments: checked once per session(...) call, one warning line for all problems ------
class _Spec:
    __slots__ = ("session_id", "thread_id", "user_id", "name", "metadata", "previous_id")

    def __init__(
        self,
        session_id: str | None,
        thread_id: str | None,
        user_id: str | None,
        name: str | None,
        metadata: dict[str, AttributeValue],
        previous_id: str | None = None,
    ) -> None:
        self.session_id = session_id
        self.thread_id = thread_id
        self.user_id = user_id
        self.name = name
        self.metadata = metadata
        self.previous_id = previous_id

    def build(self, outer: SessionContext | None) -> SessionContext:
        """A new SessionContext: given ids, else the outer session's thread/user, else generated.
        ``previous_id`` is never inherited: an inner session does not follow on from the one
        its outer session follows."""
        return SessionContext(
            self.session_id or new_session_id(),
            self.thread_id or (outer.thread_id if outer is not None and outer.thread_id else new_thread_id()),
            self.user_id if self.user_id is not None else (outer.user_id if outer is not None else None),
            self.name,
            self.metadata,
            self.previous_id,
        )


def _metadata_value(value: object) -> AttributeValue:
    if isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_METADATA_VALUE_LENGTH]


def _check(
    session_id: object,
    thread_id: object,
    user_id: object,
    name: object,
    metadata: object,
    previous_id: object = None,
) -> _Spec:
    problems: list[str] = []

    def valid_id(label: str, value: object) -> str | None:
        if value is None:
            return None
        if is_valid_id(value):
            return value  # type: ignore[return-value]
        problems.append(f"{label}={str(value)[:64]!r}")
        return None

    clean_meta: dict[str, AttributeValue] = {}
    if metadata is not None:
        if isinstance(metadata, Mapping):
            for key, value in metadata.items():
                if isinstance(key, str) and key and value is not None:
                    clean_meta[key] = _metadata_value(value)
                else:
                    problems.append(f"metadata key {str(key)[:64]!r}")
        else:
            problems.append(f"metadata of type {type(metadata).__name__}")
    clean_name: str | None = None
    if name is not None:
        if is_valid_id(name, MAX_METADATA_VALUE_LENGTH):
            clean_name = name  # type: ignore[assignment]
        else:
            problems.append(f"name={str(name)[:64]!r}")
    spec = _Spec(
        valid_id("session_id", session_id),
        valid_id("thread_id", thread_id),
        valid_id("user_id", user_id),
        clean_name,
        clean_meta,
        valid_id("previous_id", previous_id),
    )
    if problems:
        _logger.warning(
            "otel-sessions: ignored invalid %s (ids must be 1-256 printable characters); "
            "missing session and thread ids are generated",
            ", ".join(problems),
        )
    return spec


# --- activation: one ContextVar set (+ baggage when enabled), undone in reverse ------------
class _Activation:
    __slots__ = ("active", "token", "previous", "otel_token")

    def __init__(
        self,
        active: SessionContext,
        token: Token[SessionContext | None],
        previous: SessionContext | None,
        otel_token: object,
    ) -> None:
        self.active = active
        self.token = token
        self.previous = previous
        self.otel_token = otel_token


def _activate(active: SessionContext) -> _Activation:
    previous = _ACTIVE.get()
    token = _ACTIVE.set(active)
    otel_token = None
    if baggage_enabled():
        try:
            otel_token = otel_context.attach(context_with_session_baggage(active))
        except Exception:  # never raise into the app
            _logger.debug("otel-sessions: could not set baggage", exc_info=True)
    return _Activation(active, token, previous, otel_token)


def _deactivate(activation: _Activation) -> None:
    if activation.otel_token is not None:
        otel_context.detach(activation.otel_token)  # type: ignore[arg-type]  # logs, never raises
    try:
        _ACTIVE.reset(activation.token)
    except (ValueError, RuntimeError):  # token of another context (e.g. exit in another task)
        _ACTIVE.set(activation.previous)


class session:  # noqa: N801 - used like a function: `with session(...)`, `@session(...)`
    """Start a session: a context manager (sync and async) and a decorator.

    ``session(session_id=None, *, thread_id=None, user_id=None, name=None, metadata=None,
    previous_id=None)``

    - Context manager: ``with session(user_id="u-1") as s:`` (or ``async with``); ``s`` is the
      ``SessionContext``. Every span started inside carries the ids. Exceptions propagate
      unchanged and the previous session is restored.
    - Decorator: ``@session(user_id="u-1")`` on a function, coroutine function, generator or
      async generator; each call is a new session (a new generated id unless one is given).
      A generator's body runs in its own copy of the context of its first step, kept from
      step to step: a span or nested session it enters is still current after a ``yield``,
      whichever thread or task resumes or closes it, and the caller's context is never
      changed (between ``yield`` s the caller sees its own session and span).
    - Missing session and thread ids are generated (``sess_…``, ``thrd_…``). Invalid ids
      (see ``attributes.is_valid_id``) are dropped with one warning log line: an invalid
      session or thread id is replaced by a generated one, an invalid user id is left out.
      Never raises on its arguments.
    - Metadata values are stamped as ``session.metadata.<key>``; strings are cut to 1,024
      characters, values other than str/bool/int/float are turned into strings.
    - ``previous_id``: the id of the session this one follows on from (a follow-up
      conversation pointing at the one before), stamped as ``session.previous_id`` on the
      session's spans; the service answers it as the session's ``previous_id``. Checked like
      the other ids (an invalid one is left out); not inherited by nested sessions. As with
      every field, a value a span already carries is kept.
    """

    __slots__ = ("_spec", "_activations")

    def __init__(
        self,
        session_id: str | None = None,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, object] | None = None,
        previous_id: str | None = None,
    ) -> None:
        self._spec = _check(session_id, thread_id, user_id, name, metadata, previous_id)
        self._activations: list[_Activation] = []

    # context manager ------------------------------------------------------------------------
    def __enter__(self) -> SessionContext:
        active = self._spec.build(_ACTIVE.get())
        self._activations.append(_activate(active))
        return active

    def __exit__(self, *exc_info: object) -> None:
        # One session object may be entered by several threads or tasks at once: undo the
        # activation of *this* context, recognised by the SessionContext it made current.
        current = _ACTIVE.get()
        activations = self._activations
        for index in range(len(activations) - 1, -1, -1):
            if activations[index].active is current:
                _deactivate(activations.pop(index))
                return
        if activations:
            _deactivate(activations.pop())

    async def __aenter__(self) -> SessionContext:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    # decorator ------------------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        spec = self._spec
        if inspect.isasyncgenfunction(fn):
            return _wrap_async_generator(fn, spec)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, spec)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_coroutine(*args: Any, **kwargs: Any) -> Any:
                activation = _activate(spec.build(_ACTIVE.get()))
                try:
                    return await fn(*args, **kwargs)
                finally:
                    _deactivate(activation)

            return run_coroutine  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            activation = _activate(spec.build(_ACTIVE.get()))
            try:
                return fn(*args, **kwargs)
            finally:
                _deactivate(activation)

        return run  # type: ignore[return-value]


def _session_context(spec: _Spec) -> contextvars.Context:
    """A copy of the current context in which a new session of ``spec`` is active."""
    context = contextvars.copy_context()
    context.run(lambda: _activate(spec.build(_ACTIVE.get())))
    return context


def _wrap_generator(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    # the session's context is made at the first step, from the caller's context then
    return generator_in_context(fn, lambda: _session_context(spec))


def _wrap_async_generator(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    return async_generator_in_context(fn, lambda: _session_context(spec))


def wrap(fn: F) -> F:
    """``fn`` bound to the current context (session, span, baggage), for other threads.

    Use it when handing work to a thread or an executor:
    ``executor.submit(wrap(fn), arg)``, ``threading.Thread(target=wrap(fn))``. Each call runs
    in its own copy of the context captured here, so the wrapped function may run in several
    threads at once.
    """
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return captured.copy().run(fn, *args, **kwargs)

    return run  # type: ignore[return-value]
