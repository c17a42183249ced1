"""merge_contacts end to end (SPEC §3.3.5), on two workers and 8 partitions.

The merge's hops (stream/agents/merge.py) cross the partitions of every
participant and of every identifier it moves; these tests check what a
downstream consumer sees, and that intakes racing a merge on the merged
contacts' identifiers end as if run one after the other.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

from tests.integration.conftest import Env, Servers, send_json, wait_quiet
from tests.integration.test_commands import command
from tests.integration.test_identity_races import HOPS, send_all, two_workers
from tests.integration.test_intake_path import intake, of_type

pytestmark = pytest.mark.integration


async def settle(env: Env, servers: Servers) -> None:
    """Every input and hop consumed: the intakes', and the commands' too."""
    topics = [env.topic(h) for h in (*HOPS, "contacts.commands.v1")]
    await wait_quiet(servers, f"cs-{env.prefix}", topics)


def owners_from_changes(values: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Each identifier's owners at the end, folding the change events in order."""
    held: dict[str, set[str]] = defaultdict(set)
    for c in values:
        cid, data = c["contact_id"], c["data"]
        if c["type"] == "contact.created":
            held[cid] = set(data["contact"]["emails"]) | set(data["contact"]["phones"])
        elif c["type"] == "identifier.added":
            held[cid].add(data["value"])
        elif (
            c["type"] in ("contact.merged", "contact.purged") and data.get("merged_id", cid) == cid
        ):
            held[cid] = set()
    owners: dict[str, set[str]] = defaultdict(set)
    for cid, identifiers in held.items():
        for identifier in identifiers:
            owners[identifier].add(cid)
    return owners


async def created_ids(changes: Any, count: int) -> dict[str, str]:
    created = await changes.wait_until(lambda v: len(of_type(v, "contact.created")) >= count)
    return {
        c["data"]["contact"]["emails"][0]: c["contact_id"]
        for c in of_type(created, "contact.created")
    }


async def test_a_merge_moves_identifiers_to_the_survivor_and_later_inputs_follow(
    env: Env, producer, reader, servers
) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    intakes, commands = env.topic("contacts.intake.v1"), env.topic("contacts.commands.v1")
    await send_all(
        producer,
        env,
        [
            intake("acme", ["ana@example.com"], fields={"city": "Madrid"}),
            intake("acme", ["ana.b@example.com"], ["600111222"], fields={"company": "ACME"}),
            intake("acme", ["ana.c@example.com"], tags=["webinar"]),
        ],
    )
    ids = await created_ids(changes, 3)
    ana, b, c = ids["ana@example.com"], ids["ana.b@example.com"], ids["ana.c@example.com"]

    await send_json(
        producer, commands, command("acme", "merge_contacts", survivor_id=ana, merged_ids=[b, c])
    )
    values = await changes.wait_until(lambda v: len(of_type(v, "contact.merged")) >= 4)
    for merged in (b, c):
        mine = [x for x in values if x["contact_id"] == merged]
        # Its last version is its contact.merged, naming the survivor.
        assert mine[-1]["type"] == "contact.merged"
        assert mine[-1]["data"] == {"survivor_id": ana, "merged_id": merged}
        assert [x["version"] for x in mine] == list(range(1, len(mine) + 1))
    survivor = await changes.wait_until(
        lambda v: any(x["contact_id"] == ana and x["type"] == "contact.updated" for x in v)
    )
    theirs = [x for x in survivor if x["contact_id"] == ana]
    assert [x["type"] for x in theirs] == [
        "contact.created",
        "contact.merged",
        "contact.merged",
        "identifier.added",
        "identifier.added",
        "identifier.added",
        "contact.updated",
    ]
    assert [x["data"]["merged_id"] for x in theirs[1:3]] == [b, c]
    assert {x["data"]["value"] for x in theirs[3:6]} == {
        "ana.b@example.com",
        "+34600111222",
        "ana.c@example.com",
    }
    assert theirs[6]["data"]["changed"] == {
        "company": [None, "ACME"],
        "tags": [[], ["webinar"]],
    }

    # A former identifier of a merged contact now finds the survivor...
    await send_json(producer, intakes, intake("acme", ["ana.b@example.com"], tags=["again"]))
    # ... an edit naming a merged id reaches the survivor, a delete of it is rejected.
    await send_json(
        producer, commands, command("acme", "update_contact", contact_id=c, tags_add=["vip"])
    )
    await send_json(producer, commands, command("acme", "delete_contact", contact_ids=[b]))
    values = await changes.wait_until(lambda v: len(of_type(v, "command.rejected")) >= 1)
    values = await changes.wait_until(
        lambda v: (
            sum(1 for x in v if x["contact_id"] == ana and x["type"] == "contact.updated") >= 3
        )
    )
    rejected = of_type(values, "command.rejected")[0]
    assert (rejected["contact_id"], rejected["version"]) == (b, 0)
    assert rejected["data"]["reason"] == "merged"
    updates = [x for x in values if x["contact_id"] == ana and x["type"] == "contact.updated"]
    # The intake and the edit may apply in either order; both land on the survivor.
    assert set(updates[-1]["data"]["changed"]["tags"][1]) == {"webinar", "again", "vip"}
    assert not of_type(values, "contact.created")[3:], "no contact was created for a merged id"
    await settle(env, servers)
    owners = owners_from_changes(await changes.read_to_end())
    assert {i: o for i, o in owners.items() if o} == {
        "ana@example.com": {ana},
        "ana.b@example.com": {ana},
        "+34600111222": {ana},
        "ana.c@example.com": {ana},
    }


async def test_invalid_merges_are_rejected_and_change_nothing(env: Env, producer, reader) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    commands = env.topic("contacts.commands.v1")
    await send_all(
        producer, env, [intake("acme", ["x@example.com"]), intake("acme", ["y@example.com"])]
    )
    ids = await created_ids(changes, 2)
    x, y = ids["x@example.com"], ids["y@example.com"]
    ghost = "00000000-0000-4000-8000-000000000000"
    await send_json(producer, commands, command("acme", "delete_contact", contact_ids=[y]))
    await changes.wait_until(lambda v: len(of_type(v, "contact.deleted")) >= 1)
    for merged_ids in ([y], [x], [ghost]):
        await send_json(
            producer,
            commands,
            command("acme", "merge_contacts", survivor_id=x, merged_ids=merged_ids),
        )
    values = await changes.wait_until(lambda v: len(of_type(v, "command.rejected")) >= 3)
    reasons = [
        (r["contact_id"], r["version"] > 0, r["data"]["reason"])
        for r in of_type(values, "command.rejected")
    ]
    # Three merges on unkeyed records: they run in any order.
    assert sorted(reasons) == sorted(
        [
            (x, True, "invalid_merge"),  # a participant in trash
            (x, True, "invalid_merge"),  # the survivor among the merged ids
            (ghost, False, "unknown_contact"),
        ]
    )
    assert not of_type(values, "contact.merged")


async def test_intakes_racing_a_merge_on_its_identifiers_end_on_the_survivor(
    env: Env, producer, reader, servers
) -> None:
    await two_workers(env)
    changes = await reader(env.topic("contacts.changes.v1"))
    commands = env.topic("contacts.commands.v1")
    groups = [[f"m{g}.{k}@example.com" for k in range(3)] for g in range(4)]
    await send_all(producer, env, [intake("acme", [g[0]]) for g in groups])
    ids = await created_ids(changes, 4)
    heads = [ids[g[0]] for g in groups]
    rng = random.Random(5)
    # Intakes that add identifiers to the contacts being merged, or match them,
    # sent around the merge: some land before it, some wait behind its locks,
    # some find the merged contacts' identifiers already moved.
    racing = [
        intake("acme", [g[0], rng.choice(g[1:])], tags=[f"t{n}"])
        for n, g in enumerate(rng.choices(groups, k=60))
    ]
    await send_all(producer, env, racing[:30])
    await send_json(
        producer,
        commands,
        command("acme", "merge_contacts", survivor_id=heads[0], merged_ids=heads[1:]),
    )
    await send_all(producer, env, racing[30:])
    await changes.wait_until(lambda v: len(of_type(v, "contact.merged")) >= 6, timeout=60)
    await settle(env, servers)
    values = await changes.read_to_end()
    owners = owners_from_changes(values)
    everyone = {g[0] for g in groups} | {e for i in racing for e in i["emails"]}
    owned = {i: o for i, o in owners.items() if o}
    assert all(o == {heads[0]} for o in owned.values()), owned
    # 12 emails, and a contact holds 1 + 10 (SPEC §2.5): the rest are released.
    dropped = {
        c["data"]["value"]
        for c in of_type(values, "identifier.dropped")
        if c["contact_id"] == heads[0] and c["data"]["reason"] == "limit_reached"
    }
    assert len(owned) == min(len(everyone), 11)
    assert set(owned) | dropped == everyone and not set(owned) & dropped
    # Every racing intake took effect once, on one contact (each brings a new tag).
    applied: dict[str, list[str]] = defaultdict(list)
    for c in of_type(values, "contact.updated"):
        if c["cause"]["kind"] == "intake":
            applied[c["cause"]["event_id"]].append(c["contact_id"])
    assert {e: len(cs) for e, cs in applied.items()} == {i["event_id"]: 1 for i in racing}
    for contact_id in heads[1:]:
        mine = [c for c in values if c["contact_id"] == contact_id]
        assert mine[-1]["type"] == "contact.merged"
        assert [c["version"] for c in mine] == list(range(1, len(mine) + 1))
    assert len(of_type(values, "contact.created")) == 4
