"""One fleet, one writing pool: two pools scaling the same Nomad group, Auto Scaling group
or workload fight, each taking the other's counts for changes by hand, alerting and
holding for its cooldown, round again. `validate` and `run` (and a reload) refuse it.

A pool with `dry_run: true` never writes, so it may watch a fleet another pool scales,
whose writes are then no change by hand to it (watched_fleets).
"""

from __future__ import annotations

from pathlib import Path

from autoscaler.config.problems import Loc, Problem, field_name
from autoscaler.config.schema import Pool
from autoscaler.config.yaml_reader import YamlDocument, read_yaml
from backends.settings import Fleet

PoolPlace = tuple[Path, int | None, Loc]
"""Where a pool's backend block is written: file, line and field."""


def shared_fleets(
    pools: list[Pool], main: YamlDocument, main_count: int, dir_files: list[Path]
) -> list[Problem]:
    """Each writing pool whose fleet an earlier writing pool already scales, named at its
    backend block, the earlier pool's file and line in the message. `pools` are the
    main file's `main_count`, then one per file of `dir_files`, as load_config joins them."""
    first: dict[Fleet, tuple[str, PoolPlace]] = {}
    problems = []
    for index, pool in enumerate(pools):
        fleet = pool.backend.fleet()
        if fleet is None or pool.dry_run:
            continue
        place = _place(main, main_count, dir_files, index)
        if fleet not in first:
            first[fleet] = (pool.name, place)
            continue
        other, (other_file, other_line, _) = first[fleet]
        file, line, loc = place
        problems.append(
            Problem(
                file,
                line,
                field_name(loc),
                f"pool {pool.name!r} scales the same {fleet.what} as pool {other!r} "
                f"({other_file}:{other_line}): two pools on one fleet fight, each taking "
                "the other's counts for changes by hand; give each its own fleet, or "
                "dry_run: true to the one that should only watch",
            )
        )
    return problems


def watched_fleets(pools: list[Pool]) -> dict[str, str]:
    """Each dry_run pool whose fleet a writing pool scales, to that pool's name: the
    writer's counts are the autoscaler's own, not changes by hand, to the one that
    watches (told and held for its cooldown at every scale, they would be noise)."""
    writers = {
        fleet: pool.name
        for pool in pools
        if not pool.dry_run and (fleet := pool.backend.fleet()) is not None
    }
    return {
        pool.name: writers[fleet]
        for pool in pools
        if pool.dry_run and (fleet := pool.backend.fleet()) is not None and fleet in writers
    }


def _place(main: YamlDocument, main_count: int, dir_files: list[Path], index: int) -> PoolPlace:
    if index < main_count:
        loc: Loc = ("pools", index, "backend")
        return main.path, main.line_of(loc), loc
    path = dir_files[index - main_count]
    document = read_yaml(path)
    return path, document.line_of(("backend",)) if document else None, ("backend",)
