"""Derived ids (SPEC §3.2.10): the same input gives the same id on every version of the code."""

from __future__ import annotations

import os
import uuid

from stream.domain.contact import Cause, _change_id, derive_contact_id, uuid_text


def test_uuid_text_is_the_uuid_s_own_text() -> None:
    for digest in [bytes(16), b"\xff" * 16, *(os.urandom(16) for _ in range(1000))]:
        assert uuid_text(digest) == str(uuid.UUID(bytes=digest))


def test_ids_are_those_earlier_versions_derived() -> None:
    # Computed with `str(uuid.UUID(bytes=digest))`: ids in stored tables and
    # changelogs must come out the same when an input is replayed.
    assert (
        derive_contact_id("acme", "e-1", "contacts.intake.v1", 3, 1234)
        == "a4a7b407-2a06-ee4a-5a86-171183a796cc"
    )
    assert (
        _change_id("acme", "c-1", 7, "contact.updated", Cause("engagement", "ev-9"))
        == "adc2d1fa-7d29-7603-6087-9864c693c0eb"
    )
    assert (
        _change_id("acme", "c-1", 0, "contact.rejected", Cause("intake", None))
        == "ff323abe-e58c-8870-1943-ff44c9d433ac"
    )
