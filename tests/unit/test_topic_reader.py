"""stream/topic_reader.py `start_consumer`: a broker fault is retried with a fresh consumer,
a refusal (credentials, ACLs) is raised at once, and a stopping worker stops retrying."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
)

from stream import topic_reader


class Consumer:
    def __init__(self, outcome: BaseException | None) -> None:
        self.outcome = outcome
        self.stopped = False

    async def start(self) -> None:
        if self.outcome is not None:
            raise self.outcome

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(topic_reader.asyncio, "sleep", sleep)
    return slept


def maker(*outcomes: BaseException | None) -> tuple[Any, list[Consumer]]:
    made: list[Consumer] = []

    def make() -> Consumer:
        made.append(Consumer(outcomes[len(made)]))
        return made[-1]

    return make, made


async def test_broker_faults_are_retried_with_a_fresh_consumer_and_a_growing_pause(
    no_backoff: list[float],
) -> None:
    faults = [KafkaConnectionError(), UnknownTopicOrPartitionError(), KafkaTimeoutError()]
    make, made = maker(*faults, OSError(), TimeoutError(), None)
    consumer = await topic_reader.start_consumer(make, "test", lambda: False)
    assert consumer is made[-1] and len(made) == 6
    assert all(c.stopped for c in made[:-1]) and not made[-1].stopped
    assert no_backoff == [0.5, 1.0, 2.0, 4.0, 5.0]


async def test_a_refusal_is_raised_at_once(no_backoff: list[float]) -> None:
    make, made = maker(GroupAuthorizationFailedError(), None)
    with pytest.raises(GroupAuthorizationFailedError):
        await topic_reader.start_consumer(make, "test", lambda: False)
    assert len(made) == 1 and made[0].stopped and no_backoff == []


async def test_a_stopping_worker_gets_the_fault() -> None:
    make, made = maker(KafkaConnectionError(), None)
    with pytest.raises(KafkaConnectionError):
        await topic_reader.start_consumer(make, "test", lambda: True)
    assert len(made) == 1


def test_what_is_retried() -> None:
    assert topic_reader.retried(KafkaConnectionError())
    assert topic_reader.retried(KafkaTimeoutError())  # not `retriable` in aiokafka, yet transient
    assert not topic_reader.retried(GroupAuthorizationFailedError())
    assert not topic_reader.retried(ValueError())
