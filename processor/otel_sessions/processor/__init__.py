"""otel-sessions span processor: sessions, threads and users on every span (and log record).

```python
provider.add_span_processor(SessionSpanProcessor())
logger_provider.add_log_record_processor(SessionLogProcessor())  # before the exporting one
with session(user_id="u-123", name="Support chat"):
    ...  # every span started and log record emitted here carries session.id,
    # gen_ai.conversation.id, user.id
```
"""

from .context import SessionContext, current_session, session, wrap
from .events import end_session, escalate_session, state_change
from .grouping import SessionGroupingSpanProcessor
from .ids import new_session_id, new_thread_id
from .logs import SessionLogFilter, SessionLogProcessor
from .middleware import SessionASGIMiddleware, SessionWSGIMiddleware, session_from_headers
from .processor import SessionSpanProcessor
from .propagation import baggage_enabled, enable_baggage

__all__ = [
    "SessionASGIMiddleware",
    "SessionContext",
    "SessionGroupingSpanProcessor",
    "SessionLogFilter",
    "SessionLogProcessor",
    "SessionSpanProcessor",
    "SessionWSGIMiddleware",
    "baggage_enabled",
    "current_session",
    "enable_baggage",
    "end_session",
    "escalate_session",
    "new_session_id",
    "new_thread_id",
    "session",
    "session_from_headers",
    "state_change",
    "wrap",
]
