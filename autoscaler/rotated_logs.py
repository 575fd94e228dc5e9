"""A log's rotated files as logrotate leaves them, so that a report of hours a rotation
moved out of the log reads them where they went.

logrotate renames `decisions.jsonl` to `decisions.jsonl.1` (older ones `.2`, `.3`, ...;
with `compress` gzipped, `.2.gz`, the newest left plain under `delaycompress`), or under
`dateext` to `decisions.jsonl-20261207` (`.gz` when compressed). Which of them to read is
decided from names and modification times alone (files_to_read, pure): a rotated file
was last modified when its last line was written (logrotate gives the gzip it makes the
time of the file it compressed; a copy made later would only make that time later), so
one last modified before the span opens holds nothing of it and is never opened, let
alone decompressed.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from common.small_files import open_regular

_SUFFIX = r"(?:\.(?P<number>\d{1,6})|-(?P<date>\d[\d_-]*))(?P<gz>\.gz)?"
"""`.N` or `-DATE` (logrotate's `dateformat`: digits, `-` or `_`), then `.gz` or not."""


def files_to_read(log_name: str, listing: Mapping[str, float], since: float) -> list[str]:
    """The rotated files of `log_name` among `listing` (name: modification time, POSIX
    seconds) that can hold a line written at or after `since`, oldest first, then
    `log_name` itself, read last: the order the lines were written in.

    Numbered files are older the higher their number, dated ones the earlier their date.
    A file found both plain and gzipped (logrotate compressing it right now) is read
    plain: the gzip may be half written. Where both schemes are found (logrotate's config
    changed), the one whose newest file was modified last is the newer."""
    pattern = re.compile(re.escape(log_name) + _SUFFIX)
    kept: dict[tuple[str, int | str], str] = {}
    for name, modified in listing.items():
        found = pattern.fullmatch(name)
        if found is None or modified < since:
            continue
        if found["number"] is not None:  # .1 is newer than .2: -1 sorts after -2
            key: tuple[str, int | str] = ("numbered", -int(found["number"]))
        else:
            key = ("dated", re.sub(r"\D", "", found["date"]))
        if key not in kept or found["gz"] is None:
            kept[key] = name
    schemes: dict[str, list[tuple[int | str, str]]] = {}
    for (scheme, age), name in kept.items():
        schemes.setdefault(scheme, []).append((age, name))
    newest = {scheme: max(listing[name] for _, name in files) for scheme, files in schemes.items()}
    ordered = sorted(schemes, key=lambda scheme: newest[scheme])
    return [name for scheme in ordered for _, name in sorted(schemes[scheme])] + [log_name]


def siblings(path: Path) -> dict[str, float]:
    """Each entry in `path`'s folder whose name begins with its name (its rotated files
    among them), with its modification time; none where the folder is missing."""
    found: dict[str, float] = {}
    try:
        entries = os.scandir(path.parent)
    except FileNotFoundError:
        return found
    with entries:
        for entry in entries:
            if entry.name.startswith(path.name) and entry.name != path.name:
                try:
                    found[entry.name] = entry.stat().st_mtime
                except FileNotFoundError:  # removed since it was listed
                    continue
    return found


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The file's non-blank lines and their numbers, gunzipped where the name ends in
    `.gz`. NotASmallFileError at once for a FIFO, a folder or a device (open_regular: a
    FIFO would hold the reader for a writer); a gzip cut short or corrupt raises
    EOFError, gzip.BadGzipFile or zlib.error after the lines before the damage (but the
    last few kB of them, decompressed together with it)."""
    with open_regular(path) as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if path.name.endswith(".gz") else raw
        with io.TextIOWrapper(stream, encoding="utf-8", errors="replace") as text:
            yield from ((n, line) for n, line in enumerate(text, 1) if line.strip())
