"""project_snapshots: keep Redis in step with the latest contact snapshots.

Redis down never stops the pipeline: only this agent waits, retrying with
backoff, while its input topic buffers the snapshots; it catches up when
Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from faust.types import StreamT
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream.app import app, settings
from stream.projection.read_model import ReadModel
from stream.topics import snapshots_topic

log = logging.getLogger(__name__)


def build_read_model() -> ReadModel:
    client = Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=5
    )
    return ReadModel(client, settings.redis_prefix)


@app.agent(snapshots_topic, name="project-snapshots")
async def project_snapshots(stream: StreamT[bytes]) -> None:
    # Built when the agent starts, never at import time.
    model = build_read_model()
    async for raw in stream:
        snap = orjson.loads(raw)
        delay = 0.1
        while True:
            try:
                await model.apply_snapshot(snap)
                break
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, settings.projection_retry_max)
