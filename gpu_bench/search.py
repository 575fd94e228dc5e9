"""Where to probe next: rate search by bracketing and bisection, and the sweep order.

Both are pure: the rate search calls a probe it is given, the sweep planner reads the
results so far. That keeps them testable without processes, and makes a resumed sweep
take exactly the path the interrupted one would have taken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Config = tuple[int, int]  # (workers, batch)


@dataclass(frozen=True)
class SearchSettings:
    start_rps: float
    min_rps: float = 0.05
    max_rps: float = 1e6
    growth: float = 2.0
    precision: float = 0.05
    max_probes: int = 14


@dataclass
class SearchResult:
    best_rps: float | None
    ceiling_rps: float | None
    probes: list[tuple[float, bool]] = field(default_factory=list)
    stopped_by: str = "converged"


def search_max_rate(probe: Callable[[float], bool], settings: SearchSettings) -> SearchResult:
    """Highest rate the probe passes, to within `precision` of the lowest rate it fails.

    Bracket first, multiplying or dividing by `growth` from the start rate, then bisect
    the bracket; each probe costs a full measurement, so a linear sweep is out.
    """
    result = SearchResult(best_rps=None, ceiling_rps=None)

    def run(rate: float) -> bool:
        passed = probe(rate)
        result.probes.append((rate, passed))
        if passed:
            result.best_rps = rate if result.best_rps is None else max(result.best_rps, rate)
        else:
            result.ceiling_rps = (
                rate if result.ceiling_rps is None else min(result.ceiling_rps, rate)
            )
        return passed

    rate = min(max(settings.start_rps, settings.min_rps), settings.max_rps)
    while len(result.probes) < settings.max_probes:
        passed = run(rate)
        if result.best_rps is not None and result.ceiling_rps is not None:
            break
        if passed and rate >= settings.max_rps:
            result.stopped_by = "max_rps"
            return result
        if not passed and rate <= settings.min_rps:
            result.stopped_by = "min_rps"
            return result
        rate = (
            min(rate * settings.growth, settings.max_rps)
            if passed
            else max(rate / settings.growth, settings.min_rps)
        )
    while (
        result.best_rps is not None
        and result.ceiling_rps is not None
        and (result.ceiling_rps - result.best_rps) / result.best_rps > settings.precision
    ):
        if len(result.probes) >= settings.max_probes:
            result.stopped_by = "max_probes"
            return result
        run((result.best_rps + result.ceiling_rps) / 2)
    if len(result.probes) >= settings.max_probes and (
        result.best_rps is None or result.ceiling_rps is None
    ):
        result.stopped_by = "max_probes"
    return result


@dataclass(frozen=True)
class SweepStep:
    """The next configuration to measure (None: done), and why others are left out."""

    next_config: Config | None
    skipped: dict[Config, str]


def _gained(rate: float, previous: float, min_gain: float) -> bool:
    return rate > previous * (1 + min_gain)


def plan_sweep(
    workers: Sequence[int],
    batches: Sequence[int],
    done: Mapping[Config, float | None],
    min_gain: float = 0.05,
) -> SweepStep:
    """Walk batches, and workers within each batch, in ascending order.

    `done` maps a measured configuration to its sustainable rate (0 when no rate held the
    target) or None when it was infeasible. A dimension stops growing when the next step
    gains less than `min_gain`, or when a configuration was infeasible: more workers or a
    larger batch only need more memory.
    """
    skipped: dict[Config, str] = {}
    previous_best: float | None = None
    batch_list, worker_list = sorted(set(batches)), sorted(set(workers))
    for batch_index, batch in enumerate(batch_list):
        previous: float | None = None
        best: float | None = None
        for worker_index, count in enumerate(worker_list):
            config = (count, batch)
            if config not in done:
                return SweepStep(config, skipped)
            rate = done[config]
            stop = None
            if rate is None:
                stop = f"{count} workers infeasible at batch {batch}"
            elif previous is not None and not _gained(rate, previous, min_gain):
                stop = f"{count} workers gained < {min_gain:.0%} over fewer at batch {batch}"
            if rate is not None:
                best = rate if best is None else max(best, rate)
                previous = rate
            if stop is not None:
                for later in worker_list[worker_index + 1 :]:
                    skipped[(later, batch)] = stop
                break
        stop_batches = None
        if best is None:
            stop_batches = f"batch {batch} infeasible with every worker count"
        elif previous_best is not None and not _gained(best, previous_best, min_gain):
            stop_batches = f"batch {batch} gained < {min_gain:.0%} over the smaller batch"
        if best is not None:
            previous_best = best if previous_best is None else max(previous_best, best)
        if stop_batches is not None:
            for later_batch in batch_list[batch_index + 1 :]:
                for count in worker_list:
                    skipped[(count, later_batch)] = stop_batches
            break
    return SweepStep(None, skipped)
