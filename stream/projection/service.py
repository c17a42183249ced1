"""The Redis projection: a consumer of the snapshots and changes topics of its own.

It is not a Faust agent on purpose. Faust feeds every agent of a worker from
one fetch loop; when one agent waits (here: for Redis), its buffer fills and
the loop blocks, stopping every other agent too (a test showed the whole
pipeline stalling with Redis down). With a consumer of its own (group
`{app_id}-projection`), waiting for Redis stops only this consumer: Kafka
keeps the snapshots, and the projection catches up when Redis answers again.

The same consumer reads `contacts.changes.v1` for the contacts' histories
(SPEC §4): one group, one commit after both kinds of record of a batch are
in Redis. A group that never read the changes topic starts it at the
beginning, which is how history is rebuilt as far as retention goes.

Offsets are committed only after a batch is in Redis; writes are
version-checked (a history takes an event only above its head), so a batch
replayed after a crash changes nothing. So they are committed at most once
per `COMMIT_INTERVAL` while records keep coming, and at once when a fetch
comes back empty (caught up): with a commit after every batch, a worker with
a trickle of traffic sent ~2 commits per change event (100 a second at 50
events/s, docs/performance.md, session 28). A crash replays at most that
interval's batches. The filter indexes follow each
tenant's `filterable_fields`, so the projection waits for the tenant
configs to be read, as the agents do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from mode import Service
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.app import app, settings
from stream.projection.read_model import ReadModel, latest_per_contact
from stream.security import client_options
from stream.tables.tenant_configs import tenant_configs
from stream.topic_reader import start_consumer
from stream.topics import CHANGES, SNAPSHOTS

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
# Seconds between commits while every fetch returns records (module docstring).
COMMIT_INTERVAL = 1.0


class Projection(Service):
    """Keeps the Redis read model in step with the snapshots and changes topics."""

    batch_size = 500

    async def on_start(self) -> None:
        # Positions as of the last commit (see `_project`).
        self._committed: dict[TopicPartition, int] | None = {}
        self._committed_at = 0.0  # time.monotonic() of the last commit
        self.model = ReadModel(
            Redis.from_url(
                settings.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=5
            ),
            settings.redis_prefix,
            filterable_fields=lambda tenant: tenant_configs.get(tenant).filterable_fields,
        )
        self.consumer = await start_consumer(
            lambda: AIOKafkaConsumer(
                SNAPSHOTS,
                CHANGES,
                bootstrap_servers=settings.kafka_bootstrap,
                group_id=f"{settings.app_id}-projection",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                metadata_max_age_ms=5000,
                **client_options(settings),
            ),
            "projection",
            lambda: self.should_stop,
        )

    async def on_stop(self) -> None:
        await self.consumer.stop()
        await self.model.client.aclose()

    @Service.task
    async def _project(self) -> None:
        await tenant_configs.ready()
        while not self.should_stop:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_size)
            snapshots: list[bytes] = []
            changes: list[bytes] = []
            for tp, records in batches.items():
                into = snapshots if tp.topic == SNAPSHOTS else changes
                into.extend(r.value for r in records if r.value)
            if snapshots or changes:
                await self._write(latest_per_contact(snapshots), changes)
            # Nothing returned can still move the position: a read past the relay's
            # transaction markers on the changes topic. Committed too, or the group
            # would stay one record behind the topic's end until the next change.
            due = not batches or time.monotonic() - self._committed_at >= COMMIT_INTERVAL
            if due and (positions := await self._positions()) not in (None, self._committed):
                try:
                    await self.consumer.commit()  # these positions: only getmany moves them
                    self._committed = positions
                    self._committed_at = time.monotonic()
                except CommitFailedError:
                    # The group rebalanced while this batch was written (another
                    # worker joined or left): its new owner reads it again, and
                    # the version-checked writes make that harmless.
                    log.info("projection commit lost to a rebalance; the batch is re-read")

    async def _positions(self) -> dict[TopicPartition, int] | None:
        """The consumer's position in each partition it is assigned; None during a rebalance."""
        try:
            return {tp: await self.consumer.position(tp) for tp in self.consumer.assignment()}
        except IllegalStateError:
            return None

    async def _write(self, snapshots: list[dict[str, Any]], changes: list[bytes]) -> None:
        delay = 0.1
        while True:
            try:
                # Both are idempotent: a retry after a half-done write is harmless.
                await self.model.apply_snapshots(snapshots)
                await self.model.apply_changes(changes)
                return
            except REDIS_DOWN as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.projection_retry_max)


if settings.outputs_in_worker:
    app.service(Projection)
