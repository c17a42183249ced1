"""JSON Schemas of the wire contract, generated from `stream.models`.

`python -m stream.schemas docs/schemas` rewrites the committed files; a unit
test fails when they drift from the models.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel

from stream import models

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

Mode = Literal["validation", "serialization"]


def _model(model: type[BaseModel], mode: Mode) -> Callable[[], dict[str, Any]]:
    return lambda: model.model_json_schema(mode=mode)


# Inputs are described as they are accepted, outputs as they are written.
SCHEMAS: Final[dict[str, Callable[[], dict[str, Any]]]] = {
    "contact-intake.json": _model(models.ContactIntake, "validation"),
    "engagement-event.json": _model(models.EngagementEvent, "validation"),
    "command.json": lambda: models.COMMAND_ADAPTER.json_schema(mode="validation"),
    "tenant-config.json": _model(models.TenantConfig, "validation"),
    "change-event.json": _model(models.ChangeEvent, "serialization"),
    "contact-snapshot.json": _model(models.ContactSnapshot, "serialization"),
    "dead-letter.json": _model(models.DeadLetter, "serialization"),
}


def render(name: str) -> str:
    """The text of one schema file: sorted keys, two-space indent, trailing newline."""
    schema = {"$schema": JSON_SCHEMA_DIALECT, **SCHEMAS[name]()}
    if name == "command.json":
        schema.setdefault("title", "Command")
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write one JSON Schema file per wire model into `directory`; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMAS:
        path = directory / name
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stream.schemas [DIRECTORY]` (default `docs/schemas`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0] in {"-h", "--help"}):
        print("usage: python -m stream.schemas [DIRECTORY]", file=sys.stderr)
        return 2
    for path in export_schemas(Path(args[0] if args else "docs/schemas")):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
