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


@pytest.mark.parametrize(
    ("name", "region"), [("EST", "America/New_York"), ("MST", "America/Denver")]
)
def test_a_winter_abbreviation_is_refused_naming_the_region(name: str, region: str) -> None:
    """EST is in the tz database as UTC-05:00 all year: a schedule at 09:00 `EST` for New
    York's business hours opened at 10:00 local time all summer, and nothing said so."""
    with pytest.raises(
        ValueError, match=f"{name!r} is a fixed offset with no summer time"
    ) as caught:
        time_zone(name)
    assert region in str(caught.value)


@pytest.mark.parametrize("name", ["UTC", "CET", "EST5EDT", "Etc/GMT+5", "America/Phoenix"])
def test_zones_that_say_what_they_do_are_taken(name: str) -> None:
    assert str(time_zone(name)) == name
