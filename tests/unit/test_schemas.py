"""The committed JSON Schemas (docs/schemas) stay in sync with stream.models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.schemas import SCHEMAS, export_schemas, main

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "schemas"
EXPECTED_FILES = {
    "contact-intake.json",
    "engagement-event.json",
    "command.json",
    "tenant-config.json",
    "change-event.json",
    "contact-snapshot.json",
    "dead-letter.json",
}


def test_there_is_one_schema_file_per_wire_model() -> None:
    assert set(SCHEMAS) == EXPECTED_FILES


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_committed_schema_matches_the_models_byte_for_byte(name: str, tmp_path: Path) -> None:
    export_schemas(tmp_path)

    assert (COMMITTED / name).read_bytes() == (tmp_path / name).read_bytes(), (
        "docs/schemas is stale: run `python -m stream.schemas docs/schemas`"
    )


def test_export_writes_sorted_json_with_a_trailing_newline(tmp_path: Path) -> None:
    paths = export_schemas(tmp_path)

    assert {path.name for path in paths} == EXPECTED_FILES
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n")
        assert (
            text
            == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )


def test_export_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    export_schemas(first)
    export_schemas(second)

    for name in EXPECTED_FILES:
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_command_schema_requires_type_and_discriminates_on_it(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "command.json").read_text(encoding="utf-8"))

    assert schema["discriminator"]["propertyName"] == "type"
    for definition in schema["$defs"].values():
        assert definition["required"][0] == "type"


def test_change_event_schema_makes_clamped_optional_and_the_rest_required(
    tmp_path: Path,
) -> None:
    export_schemas(tmp_path)
    schema = json.loads((tmp_path / "change-event.json").read_text(encoding="utf-8"))

    assert set(schema["required"]) == set(schema["properties"])
    assert schema["$defs"]["Cause"]["required"] == ["kind", "event_id"]


def test_main_writes_the_schemas_into_the_given_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "out")]) == 0

    assert {p.name for p in (tmp_path / "out").iterdir()} == EXPECTED_FILES
    assert capsys.readouterr().out.count(".json") == len(EXPECTED_FILES)
