"""Time as integer epoch milliseconds: exact, ordered and trivially serializable."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

MS_PER_DAY = 86_400_000
# Clock skew a producer may have before its `occurred_at` is distrusted (SPEC §2.1).
MAX_FUTURE_MS = 5 * 60 * 1000


def logical_time(occurred_ms: int | None, broker_ms: int) -> tuple[int, bool]:
    """An input's time and whether it was clamped: at most 5 min after the broker's."""
    if occurred_ms is None:
        return broker_ms, False
    if occurred_ms > broker_ms + MAX_FUTURE_MS:
        return broker_ms, True
    return occurred_ms, False


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, floored to the millisecond."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: an offset is required")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def format_ms(ms: int) -> str:
    """RFC 3339 UTC with millisecond precision: `2026-11-22T10:00:00.000Z`."""
    return f"{_format_second(ms // 1000)}.{ms % 1000:03d}Z"


@lru_cache(maxsize=16384)
def _format_second(seconds: int) -> str:
    # Memoized: a snapshot formats the same few instants (created, updated, the
    # score's time) again on every operation of its contact.
    m = datetime.fromtimestamp(seconds, tz=UTC)
    # Explicit widths: strftime's %Y does not zero-pad years before 1000 on Linux.
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"


def format_optional_ms(ms: int | None) -> str | None:
    return None if ms is None else format_ms(ms)
