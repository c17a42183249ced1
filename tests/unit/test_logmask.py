"""Logs never show a full email or phone (SPEC §6): the record factory masks every record."""

from __future__ import annotations

import io
import logging

import pytest

from stream import logmask


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("visit ana.work@example.com done", "ana.work@example.com"),
        ('b\'{"emails":["Private.Person0@Example.org"]}\'', "Private.Person0@Example.org"),
        ("phone +34600111222 locked", "+34600111222"),
        ("raw 611 223 340 in a record", "611 223 340"),
        ("raw 611223340 in a record", "611223340"),
        ("message_set=b'...\\x00+34611223341\\x00'", "34611223341"),
    ],
)
def test_emails_and_phones_are_masked(text: str, hidden: str) -> None:
    assert hidden not in logmask.mask_text(text)


def test_timestamps_offsets_and_ports_stay_readable() -> None:
    text = "[2026-11-25 13:56:10,481] ts=1795612063636 offset=4521 port=19092 pid 2707"
    assert logmask.mask_text(text) == text


def test_handlers_write_arguments_and_tracebacks_masked() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.logmask")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logmask.install(logger)
    logmask.install(logger)  # twice is once
    try:
        raise ValueError("bad input ana@example.com")
    except ValueError:
        logger.error("failed on %s", "+34600111222", exc_info=True)
    text = stream.getvalue()
    assert "ana@example.com" not in text and "+34600111222" not in text
    assert text.startswith("ERROR failed on 346***22") and "ValueError" in text


def test_contact_ids_stay_readable() -> None:
    text = "contact a64b1919-7ac2-d35d-0939-3da02b4a6fd5 and 00000000-0000-4000-8000-123456789012"
    assert logmask.mask_text(text) == text
