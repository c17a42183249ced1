"""stream/topics.py: the app declares no topic itself, so `ensure_topics` must want every one."""

from __future__ import annotations

from faust.types import TopicT

import stream.worker  # noqa: F401 - every agent and table of the worker
from stream.app import app
from stream.topics import wanted_topics


def test_every_topic_faust_would_declare_is_created_by_ensure_topics() -> None:
    """Faust declared each agent's topic, each table's changelog and its leader topic on
    start; with `topic_allow_declare=False` (stream/app.py) only `ensure_topics` does."""
    assert app.conf.topic_allow_declare is False
    wanted = {name: (partitions, compacted) for name, partitions, compacted in wanted_topics()}
    sources = set()
    for agent in app.agents.values():
        assert isinstance(agent.channel, TopicT)
        sources.update(agent.channel.topics)
    assert len(sources) >= 7
    assert sources <= wanted.keys()
    for table in app.tables.values():
        assert wanted[table.changelog_topic_name][1] is True, table.name  # compacted
    leader = app._leader_assignor._leader_topic_name  # type: ignore[attr-defined]
    assert wanted[leader] == (1, False)
