"""Everything a worker runs: importing this module registers it on the app."""

from stream.agents import command, contact, identity, intake, tenants, timers  # noqa: F401
from stream.app import app
from stream.projection import service  # noqa: F401
from stream.web import views  # noqa: F401

__all__ = ["app"]
