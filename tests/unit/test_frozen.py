"""stream.domain.frozen builds what dataclasses.replace and the classes build, record by record."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stream.domain
from stream.domain.contact import Cause, Contact
from stream.domain.frozen import _replacer, constructor, replace
from stream.domain.marketing import MarketingConfig, MarketingError


def domain_dataclasses() -> list[type]:
    found: dict[str, type] = {}
    for module in pkgutil.iter_modules(stream.domain.__path__):
        loaded = importlib.import_module(f"stream.domain.{module.name}")
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if dataclasses.is_dataclass(cls) and cls.__module__ == loaded.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


CLASSES = domain_dataclasses()
values = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.tuples(st.integers()))


def outcome(make: Any) -> tuple[str, Any]:
    try:
        return "value", make()
    except Exception as error:  # the two must fail alike
        return type(error).__name__, str(error)


def test_the_domain_records_are_found_and_most_take_the_fast_path() -> None:
    assert Contact in CLASSES and MarketingConfig in CLASSES
    fast = [cls for cls in CLASSES if _replacer(cls).__name__ == "replace"]  # else a fallback
    # MarketingConfig (a __post_init__) is the one that must go through dataclasses.replace.
    assert MarketingConfig not in fast
    assert len(fast) >= len(CLASSES) - 3, fast


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
@given(data=st.data())
def test_replace_matches_dataclasses_replace(cls: type, data: st.DataObject) -> None:
    fields = dataclasses.fields(cls)
    made = outcome(lambda: cls(**{f.name: data.draw(values) for f in fields if f.init}))
    if made[0] != "value":
        return  # a __post_init__ refused the drawn values: nothing to replace
    original = made[1]
    before = [getattr(original, f.name) for f in fields]
    names = data.draw(st.lists(st.sampled_from([f.name for f in fields]), unique=True))
    changes = {name: data.draw(values) for name in names}
    ours = outcome(lambda: replace(original, **changes))
    theirs = outcome(lambda: dataclasses.replace(original, **changes))
    assert ours == theirs
    if ours[0] == "value":
        assert type(ours[1]) is cls
        for f in fields:
            assert getattr(ours[1], f.name) is getattr(theirs[1], f.name)
    assert [getattr(original, f.name) for f in fields] == before  # the original is untouched


def test_an_unknown_field_raises_type_error_as_dataclasses_replace_does() -> None:
    cause = Cause("engagement", "e1")
    with pytest.raises(TypeError, match="'kindd'") as ours:
        replace(cause, kindd="timer")  # type: ignore[call-arg]
    with pytest.raises(TypeError) as theirs:
        dataclasses.replace(cause, kindd="timer")  # type: ignore[call-arg]
    assert str(ours.value) == str(theirs.value)


def test_a_post_init_still_validates_the_replaced_values() -> None:
    with pytest.raises(MarketingError, match="hold_days"):
        replace(MarketingConfig(), hold_days=-1)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
@given(data=st.data())
def test_constructor_builds_what_the_class_builds(cls: type, data: st.DataObject) -> None:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    given_names = data.draw(st.lists(st.sampled_from([f.name for f in fields]), unique=True))
    kwargs = {name: data.draw(values) for name in given_names}
    positional = data.draw(st.booleans())
    args = [kwargs[f.name] for f in fields if f.name in kwargs]
    make = constructor(cls)

    def build(factory: Any) -> Any:
        if positional and list(kwargs) == [f.name for f in fields[: len(kwargs)]]:
            return factory(*args)
        return factory(**kwargs)

    ours, theirs = outcome(lambda: build(make)), outcome(lambda: build(cls))
    assert ours[0] == theirs[0]  # both built, or both raised the same kind of error
    if ours[0] == "value":
        assert type(ours[1]) is cls
        assert ours[1] == theirs[1]
        for f in fields:
            if f.name in kwargs:
                assert getattr(ours[1], f.name) is kwargs[f.name]


def test_constructor_leaves_a_class_with_a_post_init_to_itself() -> None:
    assert constructor(MarketingConfig) is MarketingConfig
    assert constructor(Contact) is not Contact
