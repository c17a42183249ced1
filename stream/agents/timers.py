"""fire_due_timers: send a `tick` to each contact whose next transition is due.

The tick goes through the contact's own partition and agent, in order with
every other operation on that contact (DESIGN.md, Timers); the domain fires
what is due with `at` = the due time, however late the tick (SPEC §3.7).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from stream import metrics
from stream.app import app
from stream.domain.commands import next_due
from stream.domain.contact import Contact
from stream.tables.codec import decode_contact
from stream.tables.contacts import contacts, is_contact_key
from stream.tables.due_index import DueIndex
from stream.tables.tenant_configs import engagement_config, tenant_configs
from stream.topics import contact_ops_topic, send_raw

log = logging.getLogger(__name__)
REBUILD_YIELD_EVERY = 5_000
TICK_INTERVAL = 0.5  # seconds: a due transition fires within about this much (SPEC: 2 s)

# A cache derived from the contacts table, not state of record: rebuilt from
# the table after every rebalance, so it holds exactly this worker's contacts.
due_index = DueIndex()


def due_time(contact: Contact) -> int | None:
    """The contact's next due time under its tenant's rules (status timers read them)."""
    return next_due(contact, engagement_config(tenant_configs.get(contact.tenant_id)))


@app.on_rebalance_complete.connect
async def _rebuild_due_index(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    started = time.monotonic()
    entries: list[tuple[str, int | None]] = []
    for n, (raw_key, raw) in enumerate(contacts.items()):
        key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
        if is_contact_key(key):
            entries.append((key, due_time(decode_contact(raw))))
        if n % REBUILD_YIELD_EVERY == 0:
            # A million contacts take ~20 s to read here: let heartbeats, the
            # web views and the other services run meanwhile.
            await asyncio.sleep(0)
    due_index.rebuild(entries)
    log.info(
        "due index rebuilt: %d contacts with a due time (%.2fs)",
        len(due_index),
        time.monotonic() - started,
    )


@app.timer(interval=TICK_INTERVAL)  # type: ignore[untyped-decorator]  # faust is untyped here
async def fire_due_timers() -> None:
    now = int(time.time() * 1000)
    metrics.DUE.set(len(due_index))
    for key, due in due_index.pop_due(now):
        metrics.TICKS.inc()
        tenant_id, contact_id = key.split(":", 1)
        tick = {"tenant_id": tenant_id, "contact_id": contact_id, "due": due}
        operation = {"kind": "tick", "op": f"tick|{key}|{due}", "keys": [], "tick": tick}
        await send_raw(contact_ops_topic, key.encode(), orjson.dumps(operation))
