"""Tables of the contact partitions (source: the contact-ops hop, key `tenant:contact_id`)."""

from __future__ import annotations

from stream.tables.base import bytes_table

contacts = bytes_table("contacts", "tenant:contact_id -> encoded Contact")
applied_events = bytes_table(
    "applied-events", "tenant|event_id -> when it was applied and the effects to replay"
)


def contact_key(tenant_id: str, contact_id: str) -> str:
    return f"{tenant_id}:{contact_id}"


def applied_key(tenant_id: str, event_id: str) -> str:
    return f"{tenant_id}|{event_id}"


# A merge in progress freezes its participants (stream/agents/merge.py): the
# entry's lock names the merge, other operations on the contact wait in it.
merge_locks = bytes_table(
    "merge-locks", "tenant:contact_id -> the merge holding the contact and the operations parked"
)
