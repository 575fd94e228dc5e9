"""common.settings.Strict: the rules every settings model shares."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.settings import Strict


class Example(Strict):
    count: int = 1
    rate: float = 1.0
    optional: int | None = None
    either: int | bool = 1
    flag: bool = False
    name: str = "x"


@pytest.mark.parametrize("field", ["count", "rate", "optional"])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_not_a_number(field: str, value: bool) -> None:
    """YAML reads yes/on/true as True, which pydantic alone takes as 1."""
    with pytest.raises(ValidationError, match=rf"{field}: expected a number, got the boolean"):
        Example.model_validate({field: value})


def test_numbers_and_booleans_where_they_belong_are_kept() -> None:
    example = Example.model_validate(
        {"count": 3, "rate": 2, "optional": None, "either": True, "flag": True, "name": "yes"}
    )
    assert (example.count, example.rate, example.optional) == (3, 2.0, None)
    assert example.either is True and example.flag is True


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_an_infinite_or_nan_number_is_refused(value: float) -> None:
    with pytest.raises(ValidationError):
        Example.model_validate({"rate": value})


def test_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Example.model_validate({"cuont": 3})
