"""SPEC §6: the broker stopped for 30 s mid-stream and started again.

Two workers are in the middle of the 600-intake race when Kafka stops. They
must reconnect by themselves (no restart, no agent failure), and once every
hop is quiet nothing is lost and nothing is applied twice: the changes topic
(read_committed) holds each change id once, and the change events equal the
sequential fold in the reported order.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from stream.topic_reader import start_consumer
from tests.integration.conftest import Env, Servers, wait_for, wait_quiet
from tests.integration.reference import assert_sequential
from tests.integration.test_identity_crash import PRIMARY, applied_event_ids, dedupe
from tests.integration.test_identity_races import HOPS, race_intakes, send_all, two_workers
from tests.integration.test_tenant_config import create_topic

pytestmark = pytest.mark.integration
OUTAGE_S = 30


async def test_a_broker_stopped_for_30s_mid_stream_loses_nothing_and_applies_nothing_twice(
    env: Env, producer, reader, servers: Servers
) -> None:
    first, second = await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    intake_log = await reader(env.topic("contacts.intake.v1"))
    intakes = race_intakes(seed=31, count=600, emails=150, phones=50)
    await send_all(producer, env, intakes)
    await changes.wait_until(lambda v: len(applied_event_ids(v)) >= 100, timeout=120)

    servers.stack("kafka-stop")
    try:
        at_stop = len(applied_event_ids(changes.values()))
        await asyncio.sleep(OUTAGE_S)
        for w in (first, second):
            w.assert_healthy()
    finally:
        servers.stack("kafka-start")
    assert at_stop < len(intakes), "the stream was over before the broker stopped"

    await wait_quiet(servers, f"cs-{env.prefix}", [env.topic(h) for h in HOPS], timeout=300)
    raw = await changes.read_to_end(timeout=120)
    values, repeated = dedupe(raw)
    print(
        f"\napplied at stop: {at_stop}/{len(intakes)}; change records {len(raw)},"
        f" distinct {len(values)}, repeated ids {len(repeated)}"
    )
    for w in (first, second):
        w.assert_healthy()
    assert not repeated, f"change ids published more than once: {list(repeated.items())[:5]}"
    applied = [c["cause"]["event_id"] for c in values if c["type"] in PRIMARY]
    assert sorted(applied) == sorted(i["event_id"] for i in intakes), "lost or applied twice"
    await intake_log.read_to_end()
    assert_sequential(values, intake_log.records, changes.records)


async def test_a_consumer_started_while_the_broker_is_down_waits_for_it(
    env: Env, producer, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    """The projection, the change relay and the tenant configs start their consumers so.

    A worker's projection was still starting when the broker stopped; aiokafka's
    start gave up and the running worker died with it (CI, stop 23).
    """
    topic = env.topic("started-late")
    await create_topic(servers, topic)
    await producer.send_and_wait(topic, b"before the outage", key=b"k")  # compacted: keyed

    def make() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=servers.kafka_bootstrap,
            auto_offset_reset="earliest",
            request_timeout_ms=3000,
        )

    servers.stack("kafka-stop")
    try:
        with caplog.at_level(logging.WARNING, logger="stream.topic_reader"):
            waiting = asyncio.ensure_future(start_consumer(make, "test", lambda: False))
            plain = make()
            with pytest.raises(KafkaError):  # what the services did before
                await plain.start()
            await plain.stop()
            retried = "test: no broker to start its consumer"
            await wait_for(
                lambda: any(retried in r.getMessage() for r in caplog.records), 30, what=retried
            )
            assert not waiting.done(), "gave up while the broker was down"
    finally:
        servers.stack("kafka-start")
    consumer = await asyncio.wait_for(waiting, timeout=120)
    try:
        fetched = await asyncio.wait_for(consumer.getone(), 60)
        assert fetched.value == b"before the outage"
    finally:
        await consumer.stop()
