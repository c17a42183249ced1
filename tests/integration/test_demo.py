"""The README's first command: `contact-stream demo` with its own worker, against real servers."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT, Env

pytestmark = pytest.mark.integration


def figure(text: str, label: str) -> str:
    """The value after `label` on the final screen's line of that name."""
    match = re.search(rf"^\s*{re.escape(label)}\s+(\S+)", text, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{text}"
    return match.group(1)


def test_demo_runs_a_worker_and_shows_contacts_changes_quota_and_redis(env: Env) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "stream.cli", "demo", "--no-stack", "--seconds", "30"],
        cwd=ROOT,
        env=env.worker_env(),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    final = demo.stdout[demo.stdout.rindex("contact-stream demo — tenant demo") :]
    assert int(figure(final, "contacts created")) > 50, final
    assert int(figure(final, "contacts in Redis")) > 50, final
    # The feed's commands (they name contacts seen created) reach the worker.
    assert int(figure(final, "contact.deleted")) > 0, final
    # The demo tenant's plan (250 slots) is read back from the worker's quota view.
    assert re.search(r"marketing quota\s+\d+ used of 250", final), final
    assert int(figure(final, "dead letters")) > 0, final  # the feed's deliberate garbage
    # The segment panel, from the read model: live and marketing contacts, by status.
    panel = re.search(r"live\s+(\d+)\s+marketing (\d+)\s+trash (\d+)", final)
    assert panel and int(panel.group(1)) > 50 and int(panel.group(2)) > 0, final
    assert re.search(r"status\s+.*active \d+", final), final
