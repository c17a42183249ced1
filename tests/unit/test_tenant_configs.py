"""The per-worker replica of `tenants.config.v1` (SPEC §2.5)."""

from __future__ import annotations

import orjson

from stream.models import TenantConfig
from stream.tables.tenant_configs import (
    TenantConfigs,
    dedup_ms,
    engagement_config,
    identity_config,
    marketing_config,
)


def record(value: dict | None) -> bytes | None:
    return None if value is None else orjson.dumps(value)


def test_a_tenant_never_configured_uses_the_defaults() -> None:
    assert TenantConfigs().get("acme") == TenantConfig()


def test_each_record_is_the_whole_config_absent_fields_take_the_defaults() -> None:
    configs = TenantConfigs()
    configs.apply(b"acme", record({"hold_days": 10, "points": {"open": 1}}))
    configs.apply(b"acme", record({"dedup_days": 3}))
    config = configs.get("acme")
    assert config.dedup_days == 3
    assert config.hold_days == TenantConfig().hold_days
    assert config.points == TenantConfig().points


def test_the_key_names_the_tenant_not_the_value() -> None:
    configs = TenantConfigs()
    configs.apply(b"acme", record({"tenant_id": "other", "hold_days": 10}))
    assert configs.get("acme").hold_days == 10
    assert configs.get("other") == TenantConfig()


def test_an_invalid_record_leaves_the_previous_config() -> None:
    configs = TenantConfigs()
    configs.apply(b"acme", record({"hold_days": 10}))
    configs.apply(b"acme", record({"hold_days": "ten"}))
    configs.apply(b"acme", b"{not json")
    assert configs.get("acme").hold_days == 10


def test_a_key_that_is_no_tenant_id_is_ignored() -> None:
    configs = TenantConfigs()
    configs.apply(b"bad key!", record({"hold_days": 10}))
    configs.apply(None, record({"hold_days": 10}))
    assert len(configs) == 0


def test_a_null_value_means_back_to_defaults() -> None:
    for tombstone in (None, b"", b"null"):
        configs = TenantConfigs()
        configs.apply(b"acme", record({"hold_days": 10}))
        configs.apply(b"acme", tombstone)
        assert configs.get("acme") == TenantConfig()
        assert len(configs) == 0


def test_the_identity_rules_read_the_tenants_limits_and_policies() -> None:
    config = TenantConfig(
        alt_email_limit=2, alt_phone_limit=0, trash_retention_days=5, readd_deleted_policy="suspend"
    )
    identity = identity_config(config)
    assert (identity.alt_email_limit, identity.alt_phone_limit) == (2, 0)
    assert identity.trash_retention_days == 5
    assert identity.readd_deleted_policy == "suspend"
    assert dedup_ms(TenantConfig(dedup_days=2)) == 2 * 86_400_000


def test_a_replaced_config_derives_its_own_domain_configs_not_the_memoized_ones() -> None:
    configs = TenantConfigs()
    configs.apply(b"acme", record({"alt_email_limit": 3, "points": {"open": 2}}))
    first = configs.get("acme")
    assert identity_config(first) is identity_config(first)  # built once per config object
    assert engagement_config(first).points["open"] == 2
    configs.apply(b"acme", record({"alt_email_limit": 4, "points": {"open": 5}}))
    second = configs.get("acme")
    assert identity_config(second).alt_email_limit == 4
    assert engagement_config(second).points["open"] == 5
    assert marketing_config(second) == marketing_config(TenantConfig())
    assert identity_config(first).alt_email_limit == 3
