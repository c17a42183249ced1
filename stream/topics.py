"""Topic declarations: SPEC §2 names (prefixable) and the app's internal hops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faust.assignor import LeaderAssignor
from faust.types import TopicT

from stream.app import app, settings
from stream.produce import produce
from stream.security import client_options

log = logging.getLogger(__name__)

INTAKE = settings.topic("contacts.intake.v1")
ENGAGEMENT = settings.topic("contacts.engagement.v1")
COMMANDS = settings.topic("contacts.commands.v1")
TENANT_CONFIG = settings.topic("tenants.config.v1")
CHANGES = settings.topic("contacts.changes.v1")
DEADLETTER = settings.topic("contacts.deadletter.v1")
# Internal hops: identity operations keyed by identifier (`tenant|kind|value`),
# contact operations keyed by `tenant:contact_id`, and the latest snapshot per
# contact that the Redis projection consumes (compacted: only the newest matters).
IDENTITY_OPS = settings.topic("contact-stream.identity-ops.v1")
CONTACT_OPS = settings.topic("contact-stream.contact-ops.v1")
# The marketing quota's operations, keyed by tenant: one partition owns a tenant's count.
QUOTA_OPS = settings.topic("contact-stream.quota-ops.v1")
SNAPSHOTS = settings.topic("contact-stream.snapshots.v1")
# Change events as the contact partitions send them, at least once (a replay
# sends some again), keyed like the changes topic; the change relay
# (stream/relay.py) copies each to CHANGES once, keeping in RELAY_MARKS
# (compacted, partition for partition with the outbox) the highest version it
# published per contact.
OUTBOX = settings.topic("contact-stream.change-outbox.v1")
RELAY_MARKS = settings.topic("contact-stream.change-relay-marks.v1")


def _topic(name: str, *, compacting: bool = False) -> TopicT:
    # Declared by the worker when absent (`internal=True` makes Faust create it
    # with our partition count); an existing topic is used as it is.
    return app.topic(
        name,
        value_serializer="raw",
        key_serializer="raw",
        internal=True,
        partitions=settings.partitions,
        compacting=compacting or None,
    )


intake_topic = _topic(INTAKE)
engagement_topic = _topic(ENGAGEMENT)
commands_topic = _topic(COMMANDS)
deadletter_topic = _topic(DEADLETTER)
identity_ops_topic = _topic(IDENTITY_OPS)
contact_ops_topic = _topic(CONTACT_OPS)
quota_ops_topic = _topic(QUOTA_OPS)
snapshots_topic = _topic(SNAPSHOTS, compacting=True)
outbox_topic = _topic(OUTBOX)
tenant_config_topic = _topic(TENANT_CONFIG, compacting=True)

# Every topic the worker reads or writes, with whether it is compacted.
ALL_TOPICS: tuple[tuple[str, bool], ...] = (
    (INTAKE, False),
    (ENGAGEMENT, False),
    (COMMANDS, False),
    (CHANGES, False),
    (DEADLETTER, False),
    (IDENTITY_OPS, False),
    (CONTACT_OPS, False),
    (QUOTA_OPS, False),
    (SNAPSHOTS, True),
    (OUTBOX, False),
    (RELAY_MARKS, True),
    (TENANT_CONFIG, True),
)


async def ensure_topics() -> None:
    """Create the app's topics that are missing, before any agent runs.

    Faust creates only the topics its agents consume. A send to a topic that
    does not exist yet left the producer's flush waiting for metadata (5 s
    and more in a test), and every contact operation waits for a flush.
    The tables' changelogs are created here too: a consumer subscribing to a
    missing changelog made a broker with `auto.create.topics.enable` create
    it with the broker's default partition count, and the table then failed
    with PartitionsMismatch (seen in the crash test).

    Faust's leader-election topic (`<app id>-__assignor-__leader`, one
    partition) is created here as well, and the call returns once every
    topic it created has a leader in the broker's metadata. Faust created
    that topic itself moments before its consumer subscribed; when the
    subscription's metadata missed it ("not found in cluster metadata", 95
    of 152 worker starts of one test run once the tenant-config follower
    started beside the app), the group leader saw it appear at the next
    metadata refresh (5 min later) and rejoined: a rebalance, and a full
    rebuild of the due index, on every first start (bench/timers.py at
    1 M: timers up to 35 s late).
    """
    changelogs = [(table.changelog_topic_name, True) for table in app.tables.values()]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **client_options(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            (name, settings.partitions, compacted) for name, compacted in (*ALL_TOPICS, *changelogs)
        ]
        if not app.conf.topic_disable_leader:
            leader = cast(LeaderAssignor, app._leader_assignor)._leader_topic_name
            wanted.append((leader, 1, False))
        missing = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"} if compacted else {},
            )
            for name, partitions, compacted in wanted
            if name not in existing
        ]
        if missing:
            # Another worker may create them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            await _wait_for_leaders(admin, [topic.name for topic in missing])
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Until every partition of `names` has a leader in the broker's metadata (at most 10 s)."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        described = await admin.describe_topics(names)
        waiting = [
            topic["topic"]
            for topic in described
            if topic["error_code"] != 0
            or not topic["partitions"]
            or any(partition["leader"] < 0 for partition in topic["partitions"])
        ]
        if not waiting:
            return
        if asyncio.get_running_loop().time() > deadline:
            log.warning("topics created but without a leader after 10 s: %s", waiting)
            return
        await asyncio.sleep(0.05)


async def send_raw(topic: TopicT, key: bytes | None, value: bytes) -> None:
    """Send pre-serialized bytes straight to the producer (docs/performance.md, item 6).

    Faust's `Topic.send` wraps each record in a `PendingMessage` and a
    `FutureMessage` and calls the sensors on the way in and out: ~6 % of the
    worker's CPU on the engagement path for bytes that need none of it.
    Delivery is the same (the producer's acks, and every commit flushes the
    producer first); a failed delivery is logged and counted without the
    record, once per produce batch. The record goes into the partition's
    open produce batch directly where it can (stream/produce.py). Under
    `exactly_once` the send must join the partition's transaction: Faust's
    path.
    """
    if app.in_transaction:
        await topic.send(key=key, value=value)
        return
    await produce(topic.get_topic_name(), key, value)
