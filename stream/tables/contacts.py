"""Tables of the contact partitions (source: the contact-ops hop, key `tenant:contact_id`)."""

from __future__ import annotations

from stream.tables.base import bytes_table

contacts = bytes_table(
    "contacts",
    "tenant:contact_id -> encoded Contact; tenant|event_id -> the applied record of an input",
)
# One table for both, so a contact and the record of what changed it share a
# changelog partition and keep their write order (stream/agents/applied.py).
applied_events = contacts


def contact_key(tenant_id: str, contact_id: str) -> str:
    return f"{tenant_id}:{contact_id}"


def applied_key(tenant_id: str, event_id: str) -> str:
    return f"{tenant_id}|{event_id}"


def is_contact_key(key: str) -> bool:
    """A contact's key, not an applied record's (tenant ids hold neither `:` nor `|`)."""
    colon, bar = key.find(":"), key.find("|")
    return colon != -1 and (bar == -1 or colon < bar)


# A merge in progress freezes its participants (stream/agents/merge.py): the
# entry's lock names the merge, other operations on the contact wait in it.
merge_locks = bytes_table(
    "merge-locks", "tenant:contact_id -> the merge holding the contact and the operations parked"
)
