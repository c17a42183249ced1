"""How every table of the app is declared."""

from __future__ import annotations

from faust.types import TableT

from stream.app import app, settings


def bytes_table(name: str, help_text: str) -> TableT[str, bytes]:
    """A table of bytes values, co-partitioned with the agent that writes it.

    key_type/value_type bytes is what makes Faust use the raw codec for the
    store and the changelog topic (else json, which a raw `Schema` does not
    change); str keys are encoded as UTF-8. Values are always reassigned,
    never mutated in place (in-place mutation skips the changelog).
    """
    return app.Table(
        name,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help=help_text,
    )
