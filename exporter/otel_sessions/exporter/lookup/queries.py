"""Session lookups over the store's indexes: list with filters and sort, threads, users.

No lookup scans the keyspace. Every list starts from an index (keys.py) and merges its 16
shards:

* no filter, or only a start-time range with ``sort_by=start``: the sort index itself, read
  per shard with ``ZRANGEBYSCORE ... LIMIT`` and merge-sorted (:meth:`SessionQueries._top`);
  only the page's summaries are read. Exact, with an exact ``total``.
* ``thread_id`` / ``user_id``: the members of that thread's or user's index (all shards),
  sorted by their score in the sort index (``ZMSCORE``). Exact as long as the set holds at
  most ``max_candidates`` sessions.
* a start-time range with another sort key: the ``start`` index bounded by the range.
* filters no index serves (``status``, ``service``, ``model``, ``agent``, ``tool``,
  ``environment``, ``metadata.*``, ``name`` substring, ``q`` text) are applied to a bounded candidate set: at most ``max_candidates`` sessions of
  the source above, in sort order. When that set does not cover the whole source the result
  says ``partial``: ``total`` counts the matches among the candidates examined.
* ``q`` also matches the first user and last assistant message (``figures.py``) of candidates
  whose summary does not mention it: cached figures are read, and at most
  ``FigureCache.COMPUTE_BUDGET`` missing ones computed per lookup; candidates left unexamined
  make the result ``partial``.

Each session of the page carries its conversation figures (``conversation``), cached or
computed (``figures.py``).

Expired sessions never appear: index entries whose last write is older than the retention
are removed from the shard's indexes on read (the write path does the same on write), and
an entry whose summary is gone is removed from the index it came from (``ZREM``) and the
lookup is run again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from otel_sessions.exporter.lookup.figures import FigureCache
from otel_sessions.exporter.lookup.params import MAX_CANDIDATES, MAX_LIMIT, SessionQuery
from otel_sessions.exporter.store.keys import INDEX_SHARDS, session_shard
from otel_sessions.exporter.store.sessions import SessionStore
from otel_sessions.exporter.store.summary import SessionSummary

__all__ = ["ListResult", "SessionQueries"]

_EXPIRED_SCAN = 200  # expired entries removed per shard per read


@dataclass
class ListResult:
    sessions: list[SessionSummary]
    total: int
    limit: int
    offset: int
    partial: bool = False

    def to_json(self) -> dict:
        return {"data": [s.to_json() for s in self.sessions], "total": self.total, "limit": self.limit,
                "offset": self.offset, "partial": self.partial}


@dataclass
class _Stale:
    """Index entries found dangling (summary gone) during one lookup (id "" only asks for a rerun)."""

    entries: dict[str, set[str]] = field(default_factory=dict)  # session -> extra index keys

    def add(self, session_id: str, *extra_keys: str) -> None:
        self.entries.setdefault(session_id, set()).update(extra_keys)

    def __bool__(self) -> bool:
        return bool(self.entries)


class SessionQueries:
    """Read-side lookups over one :class:`SessionStore`."""

    def __init__(self, store: SessionStore, max_candidates: int = MAX_CANDIDATES) -> None:
        self.store = store
        self.keys = store.keys
        self.max_candidates = max_candidates
        self.figures = FigureCache(store)

    # --- plumbing ---------------------------------------------------------------------------
    def _index(self, shard: int, sort_by: str) -> str:
        return self.keys.seen(shard) if sort_by == "last_activity" else self.keys.sort_index(shard, sort_by)

    def _cutoff_ms(self) -> float:
        return time.time() * 1000 - self.store.retention_ms

    def _scan_expired(self, pipe) -> None:
        """Queue, per shard, the entries whose last write is older than the retention."""
        cutoff = self._cutoff_ms()
        for shard in range(INDEX_SHARDS):
            pipe.zrangebyscore(self.keys.seen(shard), "-inf", f"({cutoff}", start=0, num=_EXPIRED_SCAN)

    async def _remove_expired(self, replies: list) -> bool:
        """Remove the entries :meth:`_scan_expired` found from every index of their shard."""
        expired = [(shard, ids) for shard, ids in enumerate(replies) if ids]
        if not expired:
            return False

        def remove(pipe) -> None:
            for shard, ids in expired:
                for key in self.keys.shard_indexes(shard):
                    pipe.zrem(key, *ids)

        await self.store.gateway.run(remove)
        return True

    async def _forget(self, stale: _Stale) -> None:
        """ZREM dangling entries from the shard indexes and the user/thread/name index they came from."""

        def fill(pipe) -> None:
            for session_id, extra in stale.entries.items():
                if not session_id:
                    continue
                for key in (*self.keys.shard_indexes(session_shard(session_id)), *extra):
                    pipe.zrem(key, session_id)

        await self.store.gateway.run(fill)

    async def _summaries(self, ids: list[str]) -> list[SessionSummary | None]:
        return await self.store.get_summaries(ids) if ids else []

    # --- list -------------------------------------------------------------------------------
    async def list_sessions(self, query: SessionQuery, conversation: bool = True) -> ListResult:
        """The page of ``query``; with ``conversation``, each session's conversation figures."""
        result = None
        for _attempt in range(4):
            stale = _Stale()
            result = await self._list_once(query, stale)
            if not stale:
                break
            await self._forget(stale)
        if conversation:
            await self.figures.fill([s for s in result.sessions if s.conversation is None])  # type: ignore[union-attr]
        return result  # type: ignore[return-value]

    async def _filtered(self, q: SessionQuery, ids: list[str], on_stale) -> tuple[list[SessionSummary], bool]:
        """The summaries of ``ids`` that pass every filter of ``q``, in order, and whether some
        could not be examined (``q`` over conversations beyond the compute budget);
        ``on_stale(id)`` for each id whose summary is gone."""
        verdicts: list[tuple[SessionSummary, bool | None]] = []
        for sid, summary in zip(ids, await self._summaries(ids)):
            if summary is None:
                on_stale(sid)
            elif q.matches(summary):
                verdicts.append((summary, True))
            elif q.q is not None and q.matches(summary, text=False):
                verdicts.append((summary, None))  # the text may be in its messages
        unsure = [summary for summary, verdict in verdicts if verdict is None]
        unexamined = await self.figures.fill(unsure) if unsure else 0
        # with its figures filled, q.matches reads the messages too (params.mentions)
        matched = [summary for summary, verdict in verdicts if verdict or (verdict is None and q.matches(summary))]
        return matched, unexamined > 0

    async def _list_once(self, q: SessionQuery, stale: _Stale) -> ListResult:
        if q.thread_id is not None:
            return await self._from_set(q, stale, lambda shard: self.keys.thread(shard, q.thread_id))
        if q.user_id is not None:
            return await self._from_set(q, stale, lambda shard: self.keys.user(shard, q.user_id))
        if q.sort_by != "start" and (q.start_us is not None or q.end_us is not None):
            lo, hi = _bounds(q)
            return await self._from_set(q, stale, lambda shard: self.keys.sort_index(shard, "start"), lo, hi)
        lo, hi = _bounds(q) if q.sort_by == "start" else ("-inf", "+inf")
        if q.post_filtered():
            return await self._from_sorted_filtered(q, stale, lo, hi)
        return await self._from_sorted(q, stale, lo, hi)

    async def _top(self, sort_by: str, descending: bool, n: int, lo, hi,
                   prelude=None) -> tuple[list[tuple[float, str]], bool, list]:
        """The first ``n`` entries of the merged shards of a sort index, whether that is all, and
        the replies of ``prelude(pipe) -> commands queued``, run in the first round trip.

        Each round reads a window per shard; merged entries are certain up to the weakest last
        entry among the shards that have more. Uniform shards need one round.
        """
        prelude_replies: list = []
        if n <= 0:
            if prelude is not None:
                prelude_replies = await self.store.gateway.run(prelude)
            return [], False, prelude_replies
        per = 2 * math.ceil(n / INDEX_SHARDS) + 4  # uniform shards: one round trip
        got: list[list[tuple[float, str]]] = [[] for _ in range(INDEX_SHARDS)]
        more = [True] * INDEX_SHARDS
        while True:
            todo = [s for s in range(INDEX_SHARDS) if more[s]]

            first_round = prelude is not None and not prelude_replies
            queued = [0]

            def fill(pipe, todo=todo, per=per, first_round=first_round, queued=queued) -> None:
                if first_round:
                    queued[0] = prelude(pipe)
                for shard in todo:
                    key = self._index(shard, sort_by)
                    if descending:
                        pipe.zrevrangebyscore(key, hi, lo, start=len(got[shard]), num=per, withscores=True)
                    else:
                        pipe.zrangebyscore(key, lo, hi, start=len(got[shard]), num=per, withscores=True)

            replies = await self.store.gateway.run(fill)
            if first_round:
                prelude_replies, replies = replies[:queued[0]], replies[queued[0]:]
            for shard, reply in zip(todo, replies):
                got[shard] += [(score, member.decode()) for member, score in reply]
                more[shard] = len(reply) == per
            merged = sorted((e for entries in got for e in entries), reverse=descending)
            if not any(more):
                return merged[:n], len(merged) <= n, prelude_replies
            # the weakest last entry of a shard with more: everything before it is in final order
            lasts = [got[s][-1] for s in range(INDEX_SHARDS) if more[s]]
            bound = max(lasts) if descending else min(lasts)
            certain = sum(1 for e in merged if (e > bound if descending else e < bound))
            if certain >= n:
                return merged[:n], False, prelude_replies
            per *= 2

    async def _from_sorted(self, q: SessionQuery, stale: _Stale, lo, hi) -> ListResult:
        """No filter beyond the sort index's own bounds: exact page and total.

        Round trip 1: expired-entry scan, counts and the first window of every shard; round
        trip 2: the page's summaries. Expired entries found in 1 are removed, then it reruns.
        """

        def prelude(pipe) -> int:
            self._scan_expired(pipe)
            for shard in range(INDEX_SHARDS):
                pipe.zcount(self._index(shard, q.sort_by), lo, hi)
            return 2 * INDEX_SHARDS

        entries, _all, head = await self._top(q.sort_by, q.descending, q.offset + q.limit, lo, hi, prelude)
        if await self._remove_expired(head[:INDEX_SHARDS]):
            stale.add("")  # run the lookup again
            return ListResult([], 0, q.limit, q.offset)
        total = sum(head[INDEX_SHARDS:])
        ids = [sid for _score, sid in entries[q.offset:]]
        sessions = []
        for sid, summary in zip(ids, await self._summaries(ids)):
            if summary is None:
                stale.add(sid)
            else:
                sessions.append(summary)
        return ListResult(sessions, total, q.limit, q.offset)

    async def _from_sorted_filtered(self, q: SessionQuery, stale: _Stale, lo, hi) -> ListResult:
        """Post filters over the first ``max_candidates`` sessions in sort order."""
        def prelude(pipe) -> int:
            self._scan_expired(pipe)
            return INDEX_SHARDS

        entries, complete, head = await self._top(q.sort_by, q.descending, self.max_candidates, lo, hi, prelude)
        if await self._remove_expired(head):
            stale.add("")  # run the lookup again
            return ListResult([], 0, q.limit, q.offset)
        matched, unexamined = await self._filtered(q, [sid for _score, sid in entries], stale.add)
        return ListResult(matched[q.offset:q.offset + q.limit], len(matched), q.limit, q.offset,
                          partial=not complete or unexamined)

    async def _from_set(self, q: SessionQuery, stale: _Stale, key_of, lo="-inf", hi="+inf") -> ListResult:
        """Candidates from a per-shard set index (thread, user, start range), sorted by the sort index."""
        cap = self.max_candidates

        def fill(pipe) -> None:
            self._scan_expired(pipe)
            for shard in range(INDEX_SHARDS):
                pipe.zcount(key_of(shard), lo, hi)
                pipe.zrangebyscore(key_of(shard), lo, hi, start=0, num=cap)

        replies = await self.store.gateway.run(fill)
        if await self._remove_expired(replies[:INDEX_SHARDS]):
            stale.add("")  # run the lookup again
            return ListResult([], 0, q.limit, q.offset)
        replies = replies[INDEX_SHARDS:]
        population = sum(replies[0::2])
        by_shard = [[m.decode() for m in members] for members in replies[1::2]]
        candidates = [(shard, sid) for shard, ids in enumerate(by_shard) for sid in ids]
        partial = population > cap
        if partial:  # a bounded (not a best-first) subset: the result says partial
            candidates = candidates[:cap]
        # ZMSCORE on the sort index (ordering) and on `seen` (expired entries) per shard
        grouped: dict[int, list[str]] = {}
        for shard, sid in candidates:
            grouped.setdefault(shard, []).append(sid)
        shards = list(grouped.items())
        cutoff = self._cutoff_ms()

        def scores(pipe) -> None:
            for shard, ids in shards:
                pipe.zmscore(self._index(shard, q.sort_by), ids)
                pipe.zmscore(self.keys.seen(shard), ids)

        replies = await self.store.gateway.run(scores) if shards else []
        live: list[tuple[float, str]] = []
        for i, (shard, ids) in enumerate(shards):
            for sid, score, seen in zip(ids, replies[2 * i], replies[2 * i + 1]):
                if score is None or seen is None or seen < cutoff:
                    stale.add(sid, key_of(shard))
                else:
                    live.append((score, sid))
        live.sort(reverse=q.descending)
        source_key = {sid: key_of(shard) for shard, sid in candidates}

        both_ids = q.thread_id is not None and q.user_id is not None  # the thread is the source
        if not q.post_filtered() and not _needs_time_check(q, lo, hi) and not both_ids:
            page = [sid for _score, sid in live[q.offset:q.offset + q.limit]]
            sessions = []
            for sid, summary in zip(page, await self._summaries(page)):
                if summary is None:
                    stale.add(sid, source_key[sid])
                else:
                    sessions.append(summary)
            return ListResult(sessions, len(live), q.limit, q.offset, partial=partial)

        matched, unexamined = await self._filtered(q, [sid for _score, sid in live],
                                                   lambda sid: stale.add(sid, source_key[sid]))
        return ListResult(matched[q.offset:q.offset + q.limit], len(matched), q.limit, q.offset,
                          partial=partial or unexamined)

    # --- threads and users ------------------------------------------------------------------
    async def thread(self, thread_id: str, limit: int = MAX_LIMIT, offset: int = 0,
                     conversation: bool = False) -> ListResult | None:
        """The sessions of a thread in start order (with their conversation figures when
        ``conversation``); None when the thread has none."""
        query = SessionQuery(thread_id=thread_id, limit=limit, offset=offset, sort_by="start", descending=False)
        result = await self.list_sessions(query, conversation=conversation)
        if result.total == 0:
            return None
        return result

    async def user_sessions(self, user_id: str, query: SessionQuery) -> ListResult | None:
        """The sessions of a user (with any other filter of ``query``); None when the user has none."""
        result = await self.list_sessions(replace(query, user_id=user_id))
        if result.total == 0 and not await self._has_members(lambda shard: self.keys.user(shard, user_id)):
            return None
        return result

    async def _has_members(self, key_of) -> bool:
        def fill(pipe) -> None:
            for shard in range(INDEX_SHARDS):
                pipe.exists(key_of(shard))

        return any(await self.store.gateway.run(fill))


def _bounds(q: SessionQuery) -> tuple[str | float, str | float]:
    lo = q.start_us if q.start_us is not None else "-inf"
    hi = q.end_us if q.end_us is not None else "+inf"
    return lo, hi


def _needs_time_check(q: SessionQuery, lo, hi) -> bool:
    """True when a start-time bound was not applied by the candidate index itself."""
    applied = lo != "-inf" or hi != "+inf"
    return (q.start_us is not None or q.end_us is not None) and not applied
