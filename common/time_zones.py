"""An IANA time zone by its name, with one error for every name that is not one."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def time_zone(name: str) -> ZoneInfo:
    """The zone `name`; a ValueError naming it if there is none.

    ZoneInfo refuses names in more ways than ZoneInfoNotFoundError: a folder of the zone
    database ("Asia") is an IsADirectoryError, a path a ValueError, a file that is not a
    zone ("zone.tab") another ValueError. A config must say "unknown zone" for each, never
    end in a traceback."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
