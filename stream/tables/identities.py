"""The identity table (source: the identity-ops hop, key `tenant|kind|value`)."""

from __future__ import annotations

import orjson

from stream.app import settings
from stream.domain.locking import Entry
from stream.tables.base import active_db, bytes_table
from stream.tables.changelog import identity_writes
from stream.tables.recent import Recent

identities = bytes_table("identities", "tenant|kind|value -> owner, lock and parked visits")

# The entries last read by `local_entry` or written by `write_entry` here,
# decoded (stream/tables/recent.py): every write of the table goes through
# `write_entry`.
recent_entries: Recent[Entry] = Recent(settings.identity_cache)


def identity_key(tenant_id: str, kind: str, value: str) -> str:
    return f"{tenant_id}|{kind}|{value}"


def encode_entry(entry: Entry) -> bytes:
    return orjson.dumps({"owner": entry.owner, "lock": entry.lock, "parked": entry.parked})


def decode_entry(raw: bytes | None) -> Entry:
    if raw is None:
        return Entry()
    d = orjson.loads(raw)
    return Entry(owner=d["owner"], lock=d["lock"], parked=tuple(d["parked"]))


def write_entry(key: str, entry: Entry) -> None:
    """The identifier's new entry (an empty one deletes it), for the identity agent only."""
    if entry.is_empty:
        identity_writes.delete(identities, key)
        recent_entries.discard(key)
    else:
        identity_writes.set(identities, key, encode_entry(entry))
        recent_entries.put(key, entry)


def local_entry(key: str) -> Entry | None:
    """The identifier's entry, decoded, where `active_db` gives its database; else None.

    None also when the identifier has no entry. A reader outside the
    identity agent (the engagement router) uses it: the partition checks
    come first, so the kept entries answer only for active, settled
    partitions, and a kept entry saves the read and the decoding.
    """
    found = active_db(identities, key)
    if found is None:
        return None
    entry = recent_entries.get(key)
    if entry is None:
        raw = found[0].get(found[1])
        if raw is None:
            return None
        entry = decode_entry(raw)
        recent_entries.put(key, entry)
    return entry
