"""The projection commits at most once per COMMIT_INTERVAL while records keep coming,
and at once when a fetch comes back empty, so its group still reaches the topics' ends."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition

from stream.projection import service
from stream.topics import CHANGES

TP = TopicPartition(CHANGES, 0)


class Record:
    def __init__(self, value: bytes) -> None:
        self.value = value


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


class Consumer:
    """Each fetch takes 0.125 s; `rounds` says whether it returns a record (which moves the
    position by one) or nothing, moving the position (a transaction marker read past) or not."""

    def __init__(self, rounds: list[str], clock: Clock, owner: Fake) -> None:
        self.rounds, self.clock, self.owner = rounds, clock, owner
        self.position_now = 0
        self.commits: list[int] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        round_ = self.rounds.pop(0)
        self.owner.should_stop = not self.rounds
        self.clock.now += 0.125  # exact in binary: 8 fetches are 1 s
        if round_ in ("record", "marker"):
            self.position_now += 1
        return {TP: [Record(b"{}")]} if round_ == "record" else {}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def position(self, tp: TopicPartition) -> int:
        return self.position_now

    async def commit(self) -> None:
        self.commits.append(self.position_now)


class Fake:
    """What Projection._project uses of the service."""

    _positions = service.Projection._positions
    batch_size = service.Projection.batch_size

    def __init__(self, rounds: list[str], clock: Clock) -> None:
        self.should_stop = False
        self.consumer = Consumer(rounds, clock, self)
        self._committed: dict[TopicPartition, int] | None = {}
        self._committed_at = 0.0
        self.written = 0

    async def _write(self, snapshots: list[Any], changes: list[bytes]) -> None:
        self.written += len(changes)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(service.time, "monotonic", fake.monotonic)

    class Configs:
        async def ready(self) -> None:
            return None

    monkeypatch.setattr(service, "tenant_configs", Configs())
    return fake


async def test_a_steady_trickle_commits_once_per_interval_and_the_end_at_once(
    clock: Clock,
) -> None:
    projection = Fake(["record"] * 30 + ["marker"], clock)  # ~4 s of records, then caught up
    await service.Projection._project(projection)
    assert projection.written == 30
    # The first batch (nothing committed yet), then once a second, then the end at once.
    assert projection.consumer.commits == [1, 9, 17, 25, 31]


async def test_every_batch_was_committed_before_the_interval(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "COMMIT_INTERVAL", 0.0)
    projection = Fake(["record"] * 30 + ["marker"], clock)
    await service.Projection._project(projection)
    assert projection.consumer.commits == list(range(1, 32))


async def test_an_empty_fetch_commits_only_a_position_that_moved(clock: Clock) -> None:
    projection = Fake(["record", "nothing", "nothing", "marker", "nothing"], clock)
    await service.Projection._project(projection)
    assert projection.consumer.commits == [1, 2]
