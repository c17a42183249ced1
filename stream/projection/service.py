"""The Redis projection: a consumer of the snapshots topic of its own.

It is not a Faust agent on purpose. Faust feeds every agent of a worker from
one fetch loop; when one agent waits (here: for Redis), its buffer fills and
the loop blocks, stopping every other agent too (a test showed the whole
pipeline stalling with Redis down). With a consumer of its own (group
`{app_id}-projection`), waiting for Redis stops only this consumer: Kafka
keeps the snapshots, and the projection catches up when Redis answers again.

Offsets are committed only after a batch is in Redis; writes are
version-checked, so a batch replayed after a crash changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError
from mode import Service
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.app import app, settings
from stream.projection.read_model import ReadModel, latest_per_contact
from stream.security import client_options
from stream.topics import SNAPSHOTS

log = logging.getLogger(__name__)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


@app.service
class Projection(Service):
    """Keeps the Redis read model in step with `contact-stream.snapshots.v1`."""

    batch_size = 500

    async def on_start(self) -> None:
        self.model = ReadModel(
            Redis.from_url(
                settings.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=5
            ),
            settings.redis_prefix,
        )
        self.consumer = AIOKafkaConsumer(
            SNAPSHOTS,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"{settings.app_id}-projection",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            metadata_max_age_ms=5000,
            **client_options(settings),
        )
        await self.consumer.start()

    async def on_stop(self) -> None:
        await self.consumer.stop()
        await self.model.client.aclose()

    @Service.task
    async def _project(self) -> None:
        while not self.should_stop:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_size)
            values = [r.value for records in batches.values() for r in records if r.value]
            if values:
                await self._write(latest_per_contact(values))
            if batches:
                try:
                    await self.consumer.commit()
                except CommitFailedError:
                    # The group rebalanced while this batch was written (another
                    # worker joined or left): its new owner reads it again, and
                    # the version-checked writes make that harmless.
                    log.info("projection commit lost to a rebalance; the batch is re-read")

    async def _write(self, snapshots: list[dict[str, Any]]) -> None:
        delay = 0.1
        while True:
            try:
                await self.model.apply_snapshots(snapshots)
                return
            except REDIS_DOWN as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.projection_retry_max)
