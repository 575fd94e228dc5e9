"""An IANA time zone by its name, with one error for every name that is not one."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WINTER_ONLY = {
    "EST": "America/New_York (or Etc/GMT+5 for UTC-05:00 all year)",
    "MST": "America/Denver, or America/Phoenix (or Etc/GMT+7 for UTC-07:00 all year)",
}
"""Zone names that read as a region's local time but are a fixed offset with no summer
time (the tz database keeps them for old systems): `EST` for New York's business hours
opened its windows an hour late all summer, without a word. Refused, naming the region."""


def time_zone(name: str) -> ZoneInfo:
    """The zone `name`; a ValueError naming it if there is none.

    ZoneInfo refuses names in more ways than ZoneInfoNotFoundError: a folder of the zone
    database ("Asia") is an IsADirectoryError, a path a ValueError, a file that is not a
    zone ("zone.tab") another ValueError. A config must say "unknown zone" for each, never
    end in a traceback."""
    if name in WINTER_ONLY:
        raise ValueError(
            f"time zone {name!r} is a fixed offset with no summer time, not the local time "
            f"of a region that changes its clocks; write {WINTER_ONLY[name]}"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
