"""Every name that is not a zone is the one ValueError, whatever ZoneInfo raised for it."""

from __future__ import annotations

import pytest

from common.time_zones import time_zone


@pytest.mark.parametrize("name", ["Asia", "America", "", "../etc", "/etc/passwd", "Nope/Nope"])
def test_a_name_that_is_no_zone_is_a_value_error_naming_it(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown IANA time zone {name!r}"):
        time_zone(name)


def test_a_zone_is_returned() -> None:
    assert str(time_zone("Europe/Berlin")) == "Europe/Berlin"
