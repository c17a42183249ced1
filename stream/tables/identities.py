"""The identity table (source: the identity-ops hop, key `tenant|kind|value`)."""

from __future__ import annotations

import orjson

from stream.domain.locking import Entry
from stream.tables.base import bytes_table

identities = bytes_table("identities", "tenant|kind|value -> owner, lock and parked visits")


def identity_key(tenant_id: str, kind: str, value: str) -> str:
    return f"{tenant_id}|{kind}|{value}"


def encode_entry(entry: Entry) -> bytes:
    return orjson.dumps({"owner": entry.owner, "lock": entry.lock, "parked": entry.parked})


def decode_entry(raw: bytes | None) -> Entry:
    if raw is None:
        return Entry()
    d = orjson.loads(raw)
    return Entry(owner=d["owner"], lock=d["lock"], parked=tuple(d["parked"]))
