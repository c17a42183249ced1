"""Prometheus metrics of a worker (SPEC §5), served at `GET /metrics`.

Counted where the work happens: inputs read per topic, records published
per topic, change events per type, dead letters per reason, the time each
contact operation takes per kind, identifier visits that had to wait, the
identifier locks held and operations parked on this worker, timer ticks
sent, the due times this worker holds, and (read at each scrape) the lag of
every partition this worker's Faust consumer is assigned.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from faust.types import ConsumerT
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

INPUTS = Counter("cs_input_events", "input records read, per topic", ["topic"])
OUTPUTS = Counter("cs_output_events", "records published, per topic", ["topic"])
CHANGES = Counter("cs_change_events", "change events published, per type", ["type"])
RELAY_COPIES = Counter(
    "cs_relay_copies_dropped",
    "change events the relay found already published (copies a replay sent again to the outbox)",
)
DEAD_LETTERS = Counter("cs_dead_letters", "dead letters sent, per reason", ["reason"])
UNDELIVERED = Counter(
    "cs_undelivered_records",
    "records the broker did not take (the producer gave up on them), per topic",
    ["topic"],
)
OPERATION_SECONDS = Histogram(
    "cs_operation_seconds",
    "time to apply one contact operation, per kind (its follow-ups go out behind a shared flush)",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
AGENT_BATCH = Histogram(
    "cs_agent_batch_events",
    "events an agent took from its stream at once, per agent (stream/agents/batches.py)",
    ["agent"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
PARKED = Counter(
    "cs_parked", "operations that waited behind a lock (identifier) or a merge (contact)", ["on"]
)
LOOKUPS_LOCAL = Counter(
    "cs_lookups_local",
    "engagements sent to their contact without the lookup hop (the identifier's entry read here)",
)
TICKS = Counter("cs_timer_ticks", "timer ticks sent for due transitions")
QUOTA_OPS = Counter("cs_quota_ops", "quota operations applied, per kind", ["kind"])
QUOTA_REFUSED = Counter("cs_quota_refused", "slot requests refused: the tenant's limit was reached")
FOLLOW_UP_FLUSHES = Counter(
    "cs_follow_up_flushes", "producer flushes that released contact operations' follow-ups"
)
FOLLOW_UPS_WAITING = Gauge(
    "cs_follow_ups_waiting", "follow-ups (unlocks, quota and merge hops) waiting for a flush"
)
GC_FROZEN = Gauge(
    "cs_gc_frozen_objects",
    "objects the garbage collector no longer walks (frozen once tables are recovered)",
)
GC_FROZEN.set_function(lambda: gc.get_freeze_count())
DUE = Gauge("cs_timers_due", "contacts of this worker with a due time in the index")
LOCKS_HELD = Gauge(
    "cs_identity_locks_held",
    "identifier locks taken minus released on this worker since it started",
)
LOCKS_WAITING = Gauge(
    "cs_identity_parked_waiting",
    "operations parked behind an identifier lock, parked minus freed on this worker since start",
)

Lags = Callable[[], Mapping[tuple[str, int], int]]

M = TypeVar("M", Counter, Gauge, Histogram)
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: M, *labels: str) -> M:
    """`metric.labels(*labels)`, looked up once: prometheus_client's `labels` validates and
    locks on every call, which the per-record paths paid for each record."""
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


class ConsumerLag(Collector):
    """`cs_consumer_lag{topic,partition}`: records not yet committed, read at scrape time."""

    def __init__(self, lags: Lags) -> None:
        self.lags = lags

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without it the registry would collect at registration, before the
        # worker has a consumer.
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for (topic, partition), lag in sorted(self.lags().items()):
            family.add_metric([topic, str(partition)], lag)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "cs_consumer_lag",
            "end offset minus committed offset of each assigned input partition",
            labels=["topic", "partition"],
        )


def watch_consumer_lag(lags: Lags) -> None:
    REGISTRY.register(ConsumerLag(lags))


def consumer_lags(consumer: ConsumerT) -> dict[tuple[str, int], int]:
    """End offset minus committed offset per assigned partition of a Faust consumer.

    Before a partition's first commit in this process, the offset after the
    last record read stands in for the committed one; a partition neither
    read nor committed, or whose end offset is not known yet (no fetch
    answered), is left out. Faust keeps both offsets in private maps only.
    """
    lags = {}
    for tp in consumer.assignment():
        try:
            end = consumer.highwater(tp)
        except AssertionError:
            continue  # revoked since assignment() answered
        done = consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
        if done is None:
            read = consumer._read_offset.get(tp)  # type: ignore[attr-defined]
            done = None if read is None else read + 1
        if end is not None and done is not None:
            lags[(tp.topic, tp.partition)] = max(0, end - done)
    return lags
