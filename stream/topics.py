"""Topic declarations: SPEC §2 names (prefixable) and the app's internal hops."""

from __future__ import annotations

from faust.types import TopicT

from stream.app import app, settings

INTAKE = settings.topic("contacts.intake.v1")
ENGAGEMENT = settings.topic("contacts.engagement.v1")
COMMANDS = settings.topic("contacts.commands.v1")
TENANT_CONFIG = settings.topic("tenants.config.v1")
CHANGES = settings.topic("contacts.changes.v1")
DEADLETTER = settings.topic("contacts.deadletter.v1")
# Internal: intakes repartitioned by tenant, and the latest snapshot per contact
# that the Redis projection consumes (compacted: only the newest matters).
INTAKE_BY_TENANT = settings.topic("contact-stream.intake-by-tenant.v1")
SNAPSHOTS = settings.topic("contact-stream.snapshots.v1")


def _topic(name: str, *, compacting: bool = False) -> TopicT:
    # Declared by the worker when absent (`internal=True` makes Faust create it
    # with our partition count); an existing topic is used as it is.
    return app.topic(
        name,
        value_serializer="raw",
        key_serializer="raw",
        internal=True,
        partitions=settings.partitions,
        compacting=compacting or None,
    )


intake_topic = _topic(INTAKE)
changes_topic = _topic(CHANGES)
deadletter_topic = _topic(DEADLETTER)
intake_by_tenant_topic = _topic(INTAKE_BY_TENANT)
snapshots_topic = _topic(SNAPSHOTS, compacting=True)
