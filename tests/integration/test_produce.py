"""stream/produce.py on a real broker: a record appended to aiokafka's accumulator directly
lands where aiokafka's own `send` puts it, acknowledged the same way; whatever the direct
path cannot judge goes aiokafka's way."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.partitioner import KafkaPartitioner
from stream.produce import fast_partition
from tests.integration.conftest import Servers, create_topics

pytestmark = pytest.mark.integration

PARTITIONS = 6


async def test_the_direct_path_puts_every_record_where_aiokafka_s_send_puts_it(
    servers: Servers,
) -> None:
    run = uuid.uuid4().hex[:8]
    direct, stock = f"produce-direct-{run}", f"produce-stock-{run}"
    await create_topics(servers, direct, stock, partitions=PARTITIONS)
    client = AIOKafkaProducer(
        bootstrap_servers=servers.kafka_bootstrap, partitioner=KafkaPartitioner()
    )
    await client.start()
    keys = [f"t{n % 3}:{uuid.UUID(int=n * 7919)}".encode() for n in range(300)]
    try:
        await client.client._wait_on_metadata(direct)
        await client.client._wait_on_metadata(stock)
        futures = []
        for n, key in enumerate(keys):
            value = b"v%d" % n
            explicit = n % PARTITIONS if n % 5 == 0 else None  # some on a given partition
            chosen = fast_partition(client, direct, key, value, explicit)
            assert chosen is not None
            futures.append(
                await client._message_accumulator.add_message(
                    TopicPartition(direct, chosen), key, value, 30.0, headers=[]
                )
            )
            futures.append(await client.send(stock, value, key=key, partition=explicit))
        for future in futures:
            assert (await future).offset >= 0  # acknowledged by the broker
    finally:
        await client.stop()
    assert await placed(servers, direct) == await placed(servers, stock)


async def placed(servers: Servers, topic: str) -> dict[bytes, tuple[int, bytes]]:
    """Each record's key -> (partition, value), read back from the broker."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[bytes, tuple[int, bytes]] = {}
    try:
        while len(found) < 300:
            for tp, records in (await consumer.getmany(timeout_ms=2000)).items():
                for record in records:
                    assert record.key is not None and record.value is not None
                    found[record.key] = (tp.partition, record.value)
    finally:
        await consumer.stop()
    return found


async def test_what_the_direct_path_leaves_to_aiokafka(servers: Servers) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"produce-left-{run}"
    await create_topics(servers, topic, partitions=PARTITIONS)
    ours = AIOKafkaProducer(
        bootstrap_servers=servers.kafka_bootstrap,
        partitioner=KafkaPartitioner(),
        max_request_size=4096,
    )
    stock = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap)
    await ours.start()
    await stock.start()
    try:
        await ours.client._wait_on_metadata(topic)
        await stock.client._wait_on_metadata(topic)
        assert fast_partition(ours, topic, b"k", b"v", None) is not None
        assert fast_partition(ours, f"unknown-{run}", b"k", b"v", None) is None  # no metadata
        assert fast_partition(ours, topic, None, b"v", None) is None  # keyless: at random
        assert fast_partition(ours, topic, b"k", b"v", PARTITIONS) is None  # no such partition
        assert fast_partition(ours, topic, b"k", b"x" * 4000, None) is None  # aiokafka sizes it
        assert fast_partition(stock, topic, b"k", b"v", None) is None  # another partitioner
        assert fast_partition(None, topic, b"k", b"v", None) is None  # not started
    finally:
        await ours.stop()
        await stock.stop()
