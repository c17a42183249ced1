"""SPEC §6 / issue 7: a worker's log never shows a full email or phone it processed."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Env, send_json
from tests.integration.test_commands import command
from tests.integration.test_engagement import engagement
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration


async def test_a_debug_log_of_every_path_holds_no_email_or_phone(
    env: Env, producer, reader
) -> None:
    # Our loggers at DEBUG, Faust's and aiokafka's at INFO. (aiokafka at DEBUG dumps
    # raw fetch responses, and a worker logging that made no progress in 3 minutes
    # here; the masking of such dumps is covered by tests/unit/test_logmask.py.)
    worker = env.worker(CS_LIBRARY_LOG_LEVEL="INFO")
    worker.level = "debug"
    worker.start()
    await worker.wait_ready()
    changes = await reader(env.topic("contacts.changes.v1"))
    dead = await reader(env.topic("contacts.deadletter.v1"))
    emails = [f"Private.Person{n}@Example.org" for n in range(3)]
    phones = ["611 223 340", "611 223 341"]
    intakes = env.topic("contacts.intake.v1")
    await send_json(producer, intakes, intake("acme", emails[:2], phones[:1]))
    await send_json(producer, intakes, intake("acme", [emails[2]], phones[1:]))
    # Inputs that fail: no valid identifier, and a schema error quoting a value.
    await send_json(producer, intakes, intake("acme", ["not-an-email-Private.Person9"]))
    await send_json(producer, intakes, {**intake("acme", [emails[0]]), "owner": {"x": emails[1]}})
    created = await changes.wait_until(
        lambda v: len(of_type(v, "contact.created")) >= 2, timeout=180
    )
    first = next(
        c["contact_id"]
        for c in of_type(created, "contact.created")
        if emails[0].lower() in c["data"]["contact"]["emails"]
    )
    await send_json(
        producer,
        env.topic("contacts.commands.v1"),
        command("acme", "update_contact", contact_id=first, remove_phones=[phones[0]]),
    )
    topic = env.topic("contacts.engagement.v1")
    await send_json(producer, topic, engagement("acme", "open", email=emails[2]))
    await send_json(producer, topic, engagement("acme", "click", phone=phones[1]))
    await send_json(
        producer, topic, engagement("acme", "open", email="Private.Person7@Example.org")
    )
    await changes.wait_until(lambda v: len(of_type(v, "engagement.scored")) >= 2, timeout=180)
    await changes.wait_until(lambda v: len(of_type(v, "identifier.removed")) >= 1, timeout=180)
    await dead.wait_until(lambda v: len(v) >= 3, timeout=180)
    worker.stop()

    text = worker.log_text()
    assert text.count("[DEBUG]") > 10, "no DEBUG lines: the test would prove little"
    secrets = [
        *emails,
        *(e.lower() for e in emails),
        "private.person7@example.org",
        *phones,
        *(p.replace(" ", "") for p in phones),
        *(f"+34{p.replace(' ', '')}" for p in phones),
    ]
    shown = [s for s in secrets if s in text]
    assert not shown, f"the log shows {shown}"
