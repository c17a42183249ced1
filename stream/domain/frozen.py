"""`dataclasses.replace` and construction for the domain's frozen, slotted records, faster.

`dataclasses.replace` walks the class's fields on every call (`fields()`,
a check and a `getattr` per field, a keyword dict) and then runs the frozen
`__init__`, which stores each field through `object.__setattr__`. An
engagement replaces its contact and its engagement state ~4 times, and in
`bench/hotpath.py` that was ~30 % of the domain step (docs/performance.md,
session 28).

Here each class gets, once, a function written for its fields: a new
instance, and each slot set straight through its descriptor, from `changes`
when named there, else from the old instance. What it gives is what
`dataclasses.replace` gives: an unknown field name raises `TypeError`, and a
class this shortcut cannot copy exactly (a `__post_init__` to run, a field
with `init=False`, no slots) goes through `dataclasses.replace` itself.

Type checkers see `dataclasses.replace` (the `TYPE_CHECKING` branch), so a
call naming a field the class lacks still fails `mypy`.

`constructor(cls)` is the same idea for building a record: a function that
takes `cls(...)`'s arguments, with its defaults, and sets the slots through
their descriptors instead of the frozen `__init__`'s `object.__setattr__`
(a contact: ~3.1 -> ~1.6 µs). The table codec builds the contacts it decodes
with it (stream/tables/codec.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from types import MemberDescriptorType
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from dataclasses import replace as replace
else:

    def replace(obj: Any, /, **changes: Any) -> Any:
        """`dataclasses.replace(obj, **changes)`, by a function made for `obj`'s class."""
        return _replacer(type(obj))(obj, changes)


Replacer = Callable[[Any, dict[str, Any]], Any]
T = TypeVar("T")


def _setters(cls: type) -> list[MemberDescriptorType] | None:
    """Each field's slot descriptor, or None if `cls(...)` does more than set them."""
    fields = dataclasses.fields(cls)
    slots = [getattr(cls, f.name, None) for f in fields]
    setters = [s for s in slots if isinstance(s, MemberDescriptorType)]
    if (
        hasattr(cls, "__post_init__")
        or any(not f.init or f.kw_only or f.name.startswith("_") for f in fields)
        or setters != slots
    ):
        return None
    return setters


@cache
def _replacer(cls: type) -> Replacer:
    setters = _setters(cls)
    if setters is None:
        return lambda obj, changes: dataclasses.replace(obj, **changes)
    fields = dataclasses.fields(cls)
    names = frozenset(f.name for f in fields)
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_names": names}
    lines = [
        "def replace(_obj, _changes):",
        "    if not _changes.keys() <= _names:",
        "        _unknown(_cls, _changes.keys() - _names)",
        "    _made = _new(_cls)",
    ]
    for i, (f, setter) in enumerate(zip(fields, setters, strict=True)):
        namespace[f"_set{i}"] = setter.__set__
        name = repr(f.name)
        lines.append(
            f"    _set{i}(_made, _changes[{name}] if {name} in _changes else _obj.{f.name})"
        )
    lines.append("    return _made")
    namespace["_unknown"] = _unknown
    exec("\n".join(lines), namespace)  # noqa: S102 - the source is built from field names only
    made: Replacer = namespace["replace"]
    return made


def constructor(cls: type[T]) -> Callable[..., T]:
    """A function building `cls` from `cls(...)`'s arguments; `cls` itself if it cannot."""
    setters = _setters(cls)
    if setters is None:
        return cls
    fields = dataclasses.fields(cast(Any, cls))
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_missing": _MISSING}
    params, body = [], []
    for i, (f, setter) in enumerate(zip(fields, setters, strict=True)):
        namespace[f"_set{i}"] = setter.__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory{i}"] = f.default_factory
            params.append(f"{f.name}=_missing")
            body.append(f"    if {f.name} is _missing:\n        {f.name} = _factory{i}()")
        else:
            params.append(f.name)
        body.append(f"    _set{i}(_made, {f.name})")
    source = f"def {cls.__name__}({', '.join(params)}):\n    _made = _new(_cls)\n"
    source += "\n".join(body) + "\n    return _made"
    exec(source, namespace)  # noqa: S102 - the source is built from field names only
    made: Callable[..., T] = namespace[cls.__name__]
    return made


_MISSING = object()


def _unknown(cls: type, names: Any) -> None:
    raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {min(names)!r}")
