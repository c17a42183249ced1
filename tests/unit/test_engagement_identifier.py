"""stream/agents/engagement.py `identifier_key`: the one identifier an engagement names,
normalized and checked as `normalize_identifiers` does for an intake's."""

from __future__ import annotations

from typing import Any

import pytest

from stream.agents import engagement
from stream.domain.normalize import Kind, normalize_identifiers
from stream.models import EngagementEvent, TenantConfig
from stream.tables.identities import identity_key

CONFIG = TenantConfig(
    default_region="MX",
    blocked_values=["noreply@example.com", "re:^test\\d*@", "+525512345678"],
)


class Configs:
    def get(self, tenant: str) -> TenantConfig:
        return CONFIG


def as_intake_would(event: EngagementEvent) -> str | None:
    ids = normalize_identifiers(
        [event.email] if event.email is not None else [],
        [event.phone] if event.phone is not None else [],
        CONFIG.default_region,
        CONFIG.blocked_values,
    )
    if ids.emails:
        return identity_key(event.tenant_id, Kind.EMAIL.value, ids.emails[0])
    if ids.phones:
        return identity_key(event.tenant_id, Kind.PHONE.value, ids.phones[0])
    return None


REFERENCES: list[dict[str, Any]] = [
    {"email": "ana@example.com"},
    {"email": "  Ana.Perez+news@Example.COM "},
    {"email": "ana@bücher.example"},
    {"email": "not an email"},
    {"email": "ana@localhost"},
    {"email": ""},
    {"email": "NoReply@Example.com"},
    {"email": "test42@example.com"},
    {"phone": "55 1234 5679"},
    {"phone": "+34 600 111 222"},
    {"phone": "55 1234 5678"},
    {"phone": "123"},
    {"phone": "   "},
    {"contact_id": "c1"},
]


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda r: repr(r))
def test_the_key_is_the_one_an_intake_s_identifiers_would_give(
    monkeypatch: pytest.MonkeyPatch, reference: dict[str, Any]
) -> None:
    monkeypatch.setattr(engagement, "tenant_configs", Configs())
    event = EngagementEvent.model_validate(
        {"event_id": "e1", "tenant_id": "t1", "type": "open", **reference}
    )

    assert engagement.identifier_key(event) == as_intake_would(event)


def test_blocked_and_invalid_identifiers_give_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engagement, "tenant_configs", Configs())

    def key(**reference: str) -> str | None:
        return engagement.identifier_key(
            EngagementEvent.model_validate(
                {"event_id": "e1", "tenant_id": "t1", "type": "open", **reference}
            )
        )

    assert key(email="Ana@Example.com") == "t1|email|ana@example.com"
    assert key(phone="55 1234 5679") == "t1|phone|+525512345679"
    assert key(email="noreply@example.com") is None
    assert key(email="test7@example.com") is None
    assert key(phone="55 1234 5678") is None
    assert key(email="ana@") is None
