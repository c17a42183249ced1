"""SPEC §6.4: a second worker joins, and later leaves, while the race is in flight.

Every rebalance pauses and resumes partitions under records already fetched:
exactly where Faust dropped records (docs/findings/faust-fetch-drop.md). One
worker starts the 2,000-intake race; a second joins after a fifth of it is
applied and leaves (SIGTERM, a graceful shutdown) after half. Once every hop
is quiet, nothing is lost and nothing applied twice: the distinct change
events equal the sequential fold in the reported order, and every intake
took effect exactly once.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import Env, Servers, wait_quiet
from tests.integration.reference import assert_sequential
from tests.integration.test_identity_crash import PRIMARY, applied_event_ids, dedupe
from tests.integration.test_identity_races import HOPS, race_intakes, send_all

pytestmark = pytest.mark.integration


async def test_a_worker_joining_and_leaving_mid_race_loses_nothing_and_applies_nothing_twice(
    env: Env, producer, reader, servers: Servers
) -> None:
    first = env.worker(datadir="a", CS_PARTITIONS="8")
    first.start()
    await first.wait_ready()
    changes = await reader(env.topic("contacts.changes.v1"))
    intake_log = await reader(env.topic("contacts.intake.v1"))
    intakes = race_intakes(seed=47, count=2000, emails=220, phones=80)
    await send_all(producer, env, intakes)

    def applied() -> int:
        return len(applied_event_ids(changes.values()))

    await changes.wait_until(lambda v: len(applied_event_ids(v)) >= 400, timeout=180)
    second = env.worker(datadir="b", CS_PARTITIONS="8")
    second.start()
    at_join = applied()
    await second.wait_ready(timeout=120)
    await changes.wait_until(lambda v: len(applied_event_ids(v)) >= 1000, timeout=180)
    second.stop()  # SIGTERM: leaves the group
    at_leave = applied()
    assert at_leave < len(intakes), "the race was over before the second worker left"

    await wait_quiet(servers, f"cs-{env.prefix}", [env.topic(h) for h in HOPS], timeout=300)
    raw = await changes.read_to_end(timeout=120)
    values, repeated = dedupe(raw)
    print(
        f"\napplied at join {at_join}, at leave {at_leave} of {len(intakes)};"
        f" change records {len(raw)}, distinct {len(values)}, repeated ids {len(repeated)}"
    )
    assert first.process is not None and first.process.poll() is None, first.log_text()[-4000:]
    assert "failed with" not in first.log_text() + second.log_text()
    done = [c["cause"]["event_id"] for c in values if c["type"] in PRIMARY]
    assert sorted(done) == sorted(i["event_id"] for i in intakes), "lost or applied twice"
    await intake_log.read_to_end()
    assert_sequential(values, intake_log.records, changes.records)
