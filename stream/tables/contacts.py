"""The tables of the intake path, co-partitioned with the tenant-keyed intake hop.

Keys are text (`tenant:contact_id`, `tenant|kind|value`, `tenant|event_id`);
values are bytes so the codec, not Faust, owns their format. Values are
always reassigned, never mutated in place (in-place mutation skips the changelog).
"""

from __future__ import annotations

from faust.types import TableT

from stream.app import app, settings


def _table(name: str, help_text: str) -> TableT[str, bytes]:
    # key_type/value_type bytes is what makes Faust use the raw codec for the
    # store and the changelog topic (else json); str keys are encoded as UTF-8.
    return app.Table(
        name,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help=help_text,
    )


contacts = _table("contacts", "tenant:contact_id -> encoded Contact")
identities = _table("identities", "tenant|kind|value -> owning contact_id")
seen_events = _table("seen-events", "tenant|event_id -> at (ms) of the applied input")


def contact_key(tenant_id: str, contact_id: str) -> str:
    return f"{tenant_id}:{contact_id}"


def identity_key(tenant_id: str, kind: str, value: str) -> str:
    return f"{tenant_id}|{kind}|{value}"


def seen_key(tenant_id: str, event_id: str) -> str:
    return f"{tenant_id}|{event_id}"
