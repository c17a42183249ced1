"""stream/tables/local_state.py: local table files are kept only after a clean stop."""

from __future__ import annotations

from pathlib import Path

from stream.tables.local_state import MARKER, mark_clean, open_local_state


def _tables(root: Path) -> Path:
    tabledir = root / "v1" / "tables"
    (tabledir / "contacts-0.db").mkdir(parents=True)
    (tabledir / "contacts-0.db" / "000008.log").write_bytes(b"x" * 100)
    return tabledir


def test_after_a_clean_stop_the_files_are_kept_and_the_marker_is_taken_back(
    tmp_path: Path,
) -> None:
    tabledir = _tables(tmp_path)
    mark_clean(tabledir)
    assert open_local_state(tabledir) is True
    assert (tabledir / "contacts-0.db" / "000008.log").exists()
    assert not (tabledir.parent / MARKER).exists()  # a kill from now on is unclean


def test_without_a_clean_stop_the_files_are_discarded(tmp_path: Path) -> None:
    tabledir = _tables(tmp_path)
    assert open_local_state(tabledir) is False
    assert not tabledir.exists()


def test_a_second_start_after_a_kill_discards_again(tmp_path: Path) -> None:
    tabledir = _tables(tmp_path)
    mark_clean(tabledir)
    open_local_state(tabledir)  # started, then killed: no marker written
    assert open_local_state(tabledir) is False


def test_a_first_start_has_nothing_to_discard(tmp_path: Path) -> None:
    assert open_local_state(tmp_path / "v1" / "tables") is True
