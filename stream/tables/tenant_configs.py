"""Every tenant's configuration, on every worker (SPEC §2.5).

`tenants.config.v1` is compacted and keyed by tenant. Each worker keeps a
full replica: its own group-less consumer reads every partition from the
beginning, and the worker's agents wait until that first read reached the
end offsets seen at start (`await tenant_configs.ready()`), so a restarted
worker never applies defaults to a configured tenant. After that it follows
the topic: a record applies to the inputs processed after it was read (SPEC
§2.5 promises no order with the input topics).

A record that does not validate leaves the tenant's previous config in
place; its dead letter is sent once, by the `check-tenant-configs` agent
(stream/agents/tenants.py), not by every replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer
from mode import Service

from stream.app import settings
from stream.domain.engagement import EngagementConfig
from stream.domain.identity import IdentityConfig
from stream.domain.marketing import MarketingConfig
from stream.domain.timefmt import MS_PER_DAY
from stream.models import InputRejected, TenantConfig, decode_tenant_config, is_valid_tenant_id
from stream.security import client_options
from stream.topic_reader import assign_from_beginning, reached, start_consumer
from stream.topics import TENANT_CONFIG

log = logging.getLogger(__name__)
DEFAULT = TenantConfig()


T = TypeVar("T")
# The domain configs derived from each TenantConfig object, built once per
# object rather than per operation (the engagement path built an
# EngagementConfig, with its points dict, for every event). Keyed by the
# object's id and kept with the object, so an id is never reused meanwhile;
# TenantConfig is frozen, so a derived config never goes stale.
_derived: dict[tuple[str, int], tuple[TenantConfig, Any]] = {}
_DERIVED_MAX = 4096


def _once(part: str, config: TenantConfig, build: Callable[[TenantConfig], T]) -> T:
    key = (part, id(config))
    hit = _derived.get(key)
    if hit is not None and hit[0] is config:
        return hit[1]  # type: ignore[no-any-return]
    if len(_derived) >= _DERIVED_MAX:
        _derived.clear()  # replaced configs' entries; rebuilt on use
    value = build(config)
    _derived[key] = (config, value)
    return value


def identity_config(config: TenantConfig) -> IdentityConfig:
    """The part of a tenant's config the identity and command rules read."""
    return _once("identity", config, _identity_config)


def engagement_config(config: TenantConfig) -> EngagementConfig:
    """The part of a tenant's config the engagement and tier rules read."""
    return _once("engagement", config, _engagement_config)


def marketing_config(config: TenantConfig) -> MarketingConfig:
    """The part of a tenant's config the marketing and quota rules read."""
    return _once("marketing", config, _marketing_config)


def _identity_config(config: TenantConfig) -> IdentityConfig:
    return IdentityConfig(
        alt_email_limit=config.alt_email_limit,
        alt_phone_limit=config.alt_phone_limit,
        hold_days=config.hold_days,
        trash_retention_days=config.trash_retention_days,
        readd_deleted_policy=config.readd_deleted_policy,
    )


def _engagement_config(config: TenantConfig) -> EngagementConfig:
    return EngagementConfig(
        points={str(kind): points for kind, points in config.points.items()},
        engaged_threshold=config.engaged_threshold,
        score_half_life_days=config.score_half_life_days,
        inactive_after_sends=config.inactive_after_sends,
        inactive_after_days=config.inactive_after_days,
        cooling_days=config.cooling_days,
        reactivation_interval_days=config.reactivation_interval_days,
        reactivation_attempts=config.reactivation_attempts,
        marketing_module=config.marketing_module,
    )


def _marketing_config(config: TenantConfig) -> MarketingConfig:
    return MarketingConfig(
        marketing_module=config.marketing_module,
        marketing_limit=config.marketing_limit,
        limit_policy=config.limit_policy,
        hold_days=config.hold_days,
    )


def dedup_ms(config: TenantConfig) -> int:
    return config.dedup_days * MS_PER_DAY


class TenantConfigs:
    """The replica itself: tenant id → config, defaults for a tenant never configured."""

    def __init__(self) -> None:
        self._configs: dict[str, TenantConfig] = {}
        self._loaded = asyncio.Event()

    async def ready(self) -> None:
        """Wait until the topic was read up to its end offsets at start."""
        if not self._loaded.is_set():
            await self._loaded.wait()

    def get(self, tenant: str) -> TenantConfig:
        return self._configs.get(tenant, DEFAULT)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic; an invalid one changes nothing."""
        tenant = (key or b"").decode("utf-8", errors="replace")
        if not is_valid_tenant_id(tenant):
            return
        try:
            config = decode_tenant_config(value)
        except InputRejected:
            return
        if value is None or value.strip() in (b"", b"null"):
            self._configs.pop(tenant, None)  # back to defaults
        else:
            self._configs[tenant] = config

    def __len__(self) -> int:
        return len(self._configs)


tenant_configs = TenantConfigs()


class TenantConfigFollower(Service):
    """Feeds `tenant_configs` from the compacted topic; started by the App before any agent."""

    async def on_start(self) -> None:
        async def assign(consumer: AIOKafkaConsumer) -> None:
            # The worker creates the topic before it starts (stream.topics.ensure_topics).
            self._ends = await assign_from_beginning(consumer, TENANT_CONFIG)

        self.consumer = await start_consumer(
            lambda: AIOKafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap,
                enable_auto_commit=False,
                metadata_max_age_ms=5000,
                **client_options(settings),
            ),
            "tenant configs",
            lambda: self.should_stop,
            assign,
        )

    async def on_stop(self) -> None:
        await self.consumer.stop()

    @Service.task
    async def _follow(self) -> None:
        while not self.should_stop:
            batches = await self.consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    tenant_configs.apply(record.key, record.value)
            if not tenant_configs._loaded.is_set() and await self._caught_up():
                log.info("tenant configs loaded: %d tenants", len(tenant_configs))
                tenant_configs._loaded.set()

    async def _caught_up(self) -> bool:
        return await reached(self.consumer, self._ends)
