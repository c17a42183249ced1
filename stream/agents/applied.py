"""What an operation did to a contact, recorded so a redelivered one repeats it exactly.

Each operation on a contact partition stores two records (their changelog
records sent when the operation ends, stream/tables/changelog.py): the applied record
(its change events, the messages it sends after, and the contact's new state)
and the contact itself. A worker killed before its offset is committed gets
the operation again; the applied record makes it publish the same changes
again instead of deciding anew on a state it already changed.

The two records live in one table (`contacts`, key spaces `tenant:id` and
`tenant|...`), so they share a changelog partition, and the applied record is
written first: a restore from the changelog that has the contact's new state
also has the record (a session-13 SIGKILL test lost versions when they were
two tables, the contact's record out and the applied one not). A restore that
has the record but not the state gets the state back from the record.
"""

from __future__ import annotations

from typing import Any

import orjson

from stream.agents.timers import due_index, due_time
from stream.app import settings
from stream.domain.contact import Contact
from stream.tables.changelog import contact_writes
from stream.tables.codec import decode_contact, encode_contact
from stream.tables.contacts import applied_events, contact_key, contacts
from stream.tables.recent import Recent

Messages = list[list[Any]]


# The contacts last read or written here, decoded (stream/tables/recent.py):
# `store` puts each new state there as it writes the table, and re-inserts the
# contact an operation loaded, so the order is the order of last use.
recent: Recent[Contact] = Recent(settings.contact_cache)


def load(tenant: str, contact_id: str) -> Contact | None:
    key = contact_key(tenant, contact_id)
    contact = recent.get(key)
    if contact is not None:
        return contact
    raw = contacts.get(key)
    if raw is None:
        return None
    contact = decode_contact(raw)
    recent.put(key, contact)
    return contact


def store(
    tenant: str, contact_id: str, contact: Contact | None, encoded: bytes | None = None
) -> None:
    """The contact's new state (`encoded`, if the caller has it already), and its next due time."""
    if contact is None:
        return
    key = contact_key(tenant, contact_id)
    contact_writes.set(contacts, key, encode_contact(contact) if encoded is None else encoded)
    recent.put(key, contact)
    due_index.schedule(key, due_time(contact))


def record(
    seen_key: str,
    at: int,
    operation: dict[str, Any],
    contact: Contact | None,
    contact_id: str,
    changes: list[str],
    after: Messages,
) -> None:
    """The applied record, then the contact: in this order (module docstring)."""
    # Encoded once: the record's `state` and the contact's table value are the same bytes.
    encoded = None if contact is None else encode_contact(contact)
    contact_writes.set(
        applied_events,
        seen_key,
        orjson.dumps(
            {
                "at": at,
                "op": operation["op"],
                "contact": contact_id,
                "changes": changes,
                "after": after,
                "state": None if encoded is None else encoded.decode(),
            }
        ),
    )
    if contact is not None:
        store(contact.tenant_id, contact_id, contact, encoded)


def seen(seen_key: str) -> dict[str, Any] | None:
    raw = applied_events.get(seen_key)
    return None if raw is None else dict(orjson.loads(raw))


def restore(tenant: str, seen_record: dict[str, Any]) -> Contact | None:
    """This very operation again: its contact, put back from the record if the restore lost it."""
    contact_id = seen_record["contact"]
    contact = load(tenant, contact_id)
    state = seen_record.get("state")
    if state is not None:
        recorded = decode_contact(state.encode())
        if contact is None or contact.version < recorded.version:
            store(tenant, contact_id, recorded)
            contact = recorded
    return contact
