"""Kafka's default partitioner, with its murmur2 compiled.

Every keyed record the worker sends without a partition (the contact
operations, the outbox changes, the snapshots, the identity operations) goes
where Kafka's Java client would send it: murmur2 of the key bytes, its sign
bit cleared, modulo the partition count (`org.apache.kafka.common.utils.Utils`,
and aiokafka's `DefaultPartitioner`). aiokafka computes murmur2 in pure
Python: 8.3 µs for a 26-byte key here, a third of a whole `send`
(docs/performance.md, session 25). `murmurhash2` (messense, a Rust
extension) gives the same 32-bit hash with Kafka's seed in ~0.5 µs; the
unit tests hold it equal to aiokafka's on random keys.

Faust takes it as `producer_partitioner`: its producer and its own key ->
partition lookups both use it, so a table written with `use_partitioner` and
a record sent by key agree, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner
from murmurhash2 import murmurhash2

# org.apache.kafka.common.utils.Utils.murmur2's seed.
KAFKA_SEED = 0x9747B28C


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 of `key`, unsigned (aiokafka.partitioner.murmur2's value)."""
    return int(murmurhash2(key, KAFKA_SEED))


def partition_for(key: bytes, count: int) -> int:
    """The partition (of `count`, numbered from 0) Kafka's default partitioner gives `key`."""
    return (murmurhash2(key, KAFKA_SEED) & 0x7FFFFFFF) % count


class KafkaPartitioner:
    """aiokafka's `DefaultPartitioner`: a keyed record by murmur2, a keyless one at random."""

    _keyless = DefaultPartitioner()

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:
            return int(self._keyless(key, all_partitions, available))
        return all_partitions[partition_for(key, len(all_partitions))]
