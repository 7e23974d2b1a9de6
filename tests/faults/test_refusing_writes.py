"""Redis refusing writes for reasons other than memory, each caused for real on the test's own
redis-server: a read-only replica after a failover (``READONLY``; ``REPLICAOF NO ONE`` ends it),
a failed RDB save with ``stop-writes-on-bgsave-error yes`` (``MISCONF``), too few replicas for
``min-replicas-to-write`` (``NOREPLICAS``), a replica cut from its primary that must not serve
stale data (``MASTERDOWN``), a script that does not end (``BUSY``; ``SCRIPT KILL`` ends it).
While it lasts every request is answered retryably and ``/readyz`` is 503; afterwards the
exporters' retries store everything exactly once."""

from __future__ import annotations

import pytest

from tests.faults.harness import Workload, conditions, refuse_then_recover
from tests.support import RunningService


@pytest.mark.parametrize("code", ["READONLY", "MISCONF", "NOREPLICAS", "MASTERDOWN", "BUSY"])
def test_refused_writes_are_retryable_and_the_retries_store_everything_once(faulty_redis, tmp_path, code):
    with RunningService(faulty_redis.url, redis_timeout="2s") as service:
        refuse_then_recover(faulty_redis, service, Workload(code.lower()), conditions(faulty_redis, tmp_path)[code])
