"""Fixtures shared by the unit tests."""

from __future__ import annotations

from typing import Any

import faust
import pytest

from stream.tables import base, changelog
from tests.unit.tables import event


@pytest.fixture
def on_partition(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the current event one of `partition`, for our table reads and writes and Faust's."""

    def current(partition: int) -> None:
        for module in (base, changelog, faust.stores.rocksdb):
            monkeypatch.setattr(module, "current_event", lambda: event(partition))

    return current
