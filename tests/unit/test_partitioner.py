"""stream/partitioner.py: the compiled murmur2 puts every key where aiokafka's (and Kafka's
Java client's) default partitioner puts it, and the app's producer uses it."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from stream.app import app
from stream.partitioner import KafkaPartitioner, murmur2

stock = DefaultPartitioner()
ours = KafkaPartitioner()


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=300))
def test_a_key_goes_where_aiokafka_s_default_partitioner_sends_it(key: bytes, count: int) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)
    partitions = list(range(count))
    assert ours(key, partitions, partitions) == stock(key, partitions, partitions)


def test_the_product_s_keys_and_kafka_s_known_values() -> None:
    ids = [f"{random.Random(i).getrandbits(64):x}" for i in range(500)]
    keys = [f"t{tenant}:{contact}".encode() for tenant in range(3) for contact in ids]
    keys += ["tenant|email|ñandú@example.com".encode(), b"", b"a", b"ab", b"abc"]
    for key in keys:
        assert ours(key, list(range(12)), []) == stock(key, list(range(12)), [])
    # The Java client's murmur2 of these (org.apache.kafka.common.utils.UtilsTest).
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") & 0xFFFFFFFF == (-985981536) & 0xFFFFFFFF


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    assert {ours(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {ours(None, [0, 1], []) for _ in range(50)} <= {0, 1}


def test_the_app_s_producer_partitions_with_it() -> None:
    assert isinstance(app.conf.producer_partitioner, KafkaPartitioner)
    assert isinstance(app.producer.partitioner, KafkaPartitioner)


async def test_the_change_relay_s_producers_partition_with_it() -> None:
    from types import SimpleNamespace

    from stream.relay import ChangeRelay

    producer = ChangeRelay._producer(SimpleNamespace(group="g"), 0)  # type: ignore[arg-type]
    assert isinstance(producer._partitioner, KafkaPartitioner)
