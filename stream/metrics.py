"""Prometheus metrics of a worker (SPEC §5), served at `GET /metrics`.

Counted where the work happens: inputs read per topic, change events
published per type, dead letters per reason, the time each contact
operation takes per kind, identifier visits that had to wait, timer ticks
sent, and the due times this worker holds.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INPUTS = Counter("cs_input_events", "input records read, per topic", ["topic"])
CHANGES = Counter("cs_change_events", "change events published, per type", ["type"])
DEAD_LETTERS = Counter("cs_dead_letters", "dead letters sent, per reason", ["reason"])
OPERATION_SECONDS = Histogram(
    "cs_operation_seconds",
    "time to apply one contact operation and flush its effects, per kind",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
PARKED = Counter(
    "cs_parked", "operations that waited behind a lock (identifier) or a merge (contact)", ["on"]
)
TICKS = Counter("cs_timer_ticks", "timer ticks sent for due transitions")
QUOTA_OPS = Counter("cs_quota_ops", "quota operations applied, per kind", ["kind"])
QUOTA_REFUSED = Counter("cs_quota_refused", "slot requests refused: the tenant's limit was reached")
DUE = Gauge("cs_timers_due", "contacts of this worker with a due time in the index")
