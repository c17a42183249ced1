"""stream/produce.py on a real broker: a record appended to aiokafka's accumulator directly
lands where aiokafka's own `send` puts it, acknowledged the same way; whatever the direct
path cannot judge goes aiokafka's way. What an acknowledgement is for (a changelog
partition's persisted offset, a failure logged and counted) is done once per produce
batch on the direct path, once per record on aiokafka's."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalOperation
from prometheus_client import REGISTRY

from stream import produce as produce_module
from stream.partitioner import KafkaPartitioner
from stream.produce import append, fast_partition, produce
from tests.integration.conftest import Servers, create_topics

pytestmark = pytest.mark.integration

PARTITIONS = 6


async def test_the_direct_path_puts_every_record_where_aiokafka_s_send_puts_it(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    direct, stock = f"produce-direct-{run}", f"produce-stock-{run}"
    await create_topics(servers, direct, stock, partitions=PARTITIONS)
    client = AIOKafkaProducer(
        bootstrap_servers=servers.kafka_bootstrap, partitioner=KafkaPartitioner()
    )
    await client.start()
    use_producer(monkeypatch, client)
    keys = [f"t{n % 3}:{uuid.UUID(int=n * 7919)}".encode() for n in range(300)]
    try:
        await client.client._wait_on_metadata(direct)
        await client.client._wait_on_metadata(stock)
        for n, key in enumerate(keys):
            value = b"v%d" % n
            explicit = n % PARTITIONS if n % 5 == 0 else None  # some on a given partition
            assert fast_partition(client, direct, key, value, explicit) is not None
            await produce(direct, key, value, explicit)
            await client.send(stock, value, key=key, partition=explicit)
        await client.flush()
    finally:
        await client.stop()
    assert await placed(servers, direct) == await placed(servers, stock)


def use_producer(monkeypatch: pytest.MonkeyPatch, client: AIOKafkaProducer) -> None:
    """`produce` sends with `client`, as the app's producer (Faust's `send` is aiokafka's)."""

    async def send(topic: str, key: bytes, value: bytes, partition: int | None, *_: Any) -> Any:
        return await client.send(topic, value, key=key, partition=partition)

    app = SimpleNamespace(producer=SimpleNamespace(_producer=client, send=send))
    monkeypatch.setattr(produce_module, "app", app)


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


class Offsets:
    """A changelog store's persisted offsets, as `produce` sets them."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.calls.append((tp.partition, offset))

    def last(self) -> dict[int, int]:
        return dict(self.calls)


@pytest.fixture(params=["direct", "aiokafka"])
async def sending(
    request: pytest.FixtureRequest, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AIOKafkaProducer]:
    """`produce` on a started producer: ours (the direct path) or the stock one (aiokafka's)."""
    partitioner = {"partitioner": KafkaPartitioner()} if request.param == "direct" else {}
    client = AIOKafkaProducer(bootstrap_servers=servers.kafka_bootstrap, **partitioner)
    await client.start()
    use_producer(monkeypatch, client)
    try:
        yield client
    finally:
        await client.stop()


def direct(client: AIOKafkaProducer) -> bool:
    return isinstance(client._partitioner, KafkaPartitioner)


async def flushed(client: AIOKafkaProducer) -> None:
    """Every record acknowledged (or refused), and the done callbacks run."""
    await client.flush()
    await asyncio.sleep(0)


async def test_a_changelog_partition_s_persisted_offset_follows_its_acknowledgements(
    servers: Servers, sending: AIOKafkaProducer
) -> None:
    topic = f"produce-offsets-{uuid.uuid4().hex[:8]}"
    await create_topics(servers, topic, partitions=3)
    offsets = Offsets()
    await produce(topic, b"warm-up", b"", offsets=offsets)  # the metadata, fetched
    await flushed(sending)
    for n in range(300):
        await produce(topic, b"k%d" % n, b"v%d" % n, offsets=offsets)
    await flushed(sending)
    ends = await end_offsets(servers, topic, 3)
    assert offsets.last() == {partition: end - 1 for partition, end in ends.items() if end}
    if direct(sending):  # once per produce batch: a few, not one per record
        assert len(offsets.calls) < 30
    else:
        assert len(offsets.calls) == 301


async def end_offsets(servers: Servers, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: end for tp, end in ends.items()}


async def test_records_the_broker_refuses_are_logged_and_counted_without_their_content(
    servers: Servers, sending: AIOKafkaProducer, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"produce-refused-{uuid.uuid4().hex[:8]}"
    await create_topics(servers, topic, partitions=1, config={"max.message.bytes": "1024"})
    offsets = Offsets()
    await produce(topic, b"warm-up", b"", offsets=offsets)
    await flushed(sending)
    before = undelivered(topic)
    with caplog.at_level(logging.ERROR, logger="stream.produce"):
        for _ in range(4):
            await produce(topic, b"secret@example.com", b"x" * 4000, offsets=offsets)
        await flushed(sending)
    assert undelivered(topic) - before == 4
    logged = [r.getMessage() for r in caplog.records]
    if direct(sending):  # the four were one batch: one line
        assert logged == [f"{topic}: 4 record(s) not delivered: MessageSizeTooLargeError"]
    else:
        assert logged == [f"{topic}: 1 record(s) not delivered: MessageSizeTooLargeError"] * 4
    assert all("secret" not in line for line in logged)
    assert offsets.calls == [(0, 0)]  # the warm-up's; none for a refused record


def undelivered(topic: str) -> float:
    return REGISTRY.get_sample_value("cs_undelivered_records_total", {"topic": topic}) or 0.0


async def test_records_appended_in_a_transaction_land_where_send_puts_them_and_only_on_commit(
    servers: Servers,
) -> None:
    """The relay's path (`append`): a transactional producer, records joining open batches."""
    run = uuid.uuid4().hex[:8]
    direct, stock = f"append-direct-{run}", f"append-stock-{run}"
    await create_topics(servers, direct, stock, partitions=PARTITIONS)
    client = AIOKafkaProducer(
        bootstrap_servers=servers.kafka_bootstrap,
        partitioner=KafkaPartitioner(),
        transactional_id=f"append-{run}",
        enable_idempotence=True,
        linger_ms=5,
    )
    await client.start()
    keys = [f"t{n % 3}:{uuid.UUID(int=n * 7919)}".encode() for n in range(300)]
    try:
        with pytest.raises(IllegalOperation):  # outside a transaction: as aiokafka's send
            await append(client, direct, b"k", b"v")
        with pytest.raises(Aborted):  # leaving the block aborts: nothing of it is read
            async with client.transaction():
                for key in keys[:10]:
                    await (await append(client, direct, key, b"aborted"))
                raise Aborted
        async with client.transaction():
            await client.client._wait_on_metadata(direct)
            await client.client._wait_on_metadata(stock)
            waits: dict[int, asyncio.Future[Any]] = {}
            for n, key in enumerate(keys):
                value, at = b"v%d" % n, 1_700_000_000_000 + n
                explicit = n % PARTITIONS if n % 5 == 0 else None
                done = await append(client, direct, key, value, explicit, timestamp_ms=at)
                waits[id(done)] = done
                await client.send(stock, value, key=key, partition=explicit, timestamp_ms=at)
            # Most records joined a batch: far fewer futures than records.
            assert len(waits) < 60
            await asyncio.gather(*waits.values())
    finally:
        await client.stop()
    ours, theirs = await committed(servers, direct), await committed(servers, stock)
    assert ours == theirs and len(ours) == 300


class Aborted(Exception):
    pass


async def committed(servers: Servers, topic: str) -> dict[bytes, tuple[int, bytes, int]]:
    """Each committed record's key -> (partition, value, timestamp), read_committed."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers.kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    found: dict[bytes, tuple[int, bytes, int]] = {}
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(found) < 300 and asyncio.get_running_loop().time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    assert record.key is not None and record.value is not None
                    found[record.key] = (tp.partition, record.value, record.timestamp)
        for _ in range(2):  # nothing more comes (the aborted records stay unread)
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    assert record.key is not None and record.value is not None
                    found[record.key] = (tp.partition, record.value, record.timestamp)
    finally:
        await consumer.stop()
    return found
