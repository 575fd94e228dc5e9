"""`validate --check-backends`: reach everything the daemon will talk to, change nothing.

Each pool's fleet and target, another autoscaler on that fleet (found: a failure, the two
would fight; one that cannot be asked is said, not failed), each pool's demand query
against the metrics source (an empty, stale or ambiguous answer is a failure, as the tick
would hold on it), the Slack token (auth.test) and channel (autoscaler.slack_check;
nothing is posted) and the leader lock (read, never taken). Every check runs; each says
what it found; the caller prints "ok" only when all passed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial

from rich.console import Console

from autoscaler.config.schema import Config, Pool
from autoscaler.metrics import MetricsError, MetricsSource, fetch_demand
from autoscaler.notify_slack import SlackNotifier
from autoscaler.other_autoscalers import check_failure
from autoscaler.runtime import make_clock, make_metrics
from backends import make_backend
from backends.base import BackendError, other_autoscalers
from backends.leases import LeaderElection, make_leader_lock
from common.clock import Clock
from common.durations import format_duration
from common.secrets import redact

Check = Callable[[], str]
"""One check: what it found, or an exception saying what failed."""
FAILURES = (BackendError, MetricsError, ValueError, OSError)


def backend_checks(config: Config, env: Mapping[str, str] = os.environ) -> dict[str, Check]:
    """Every check for this config, by what it reaches, in the order they run."""
    clock = make_clock(config)
    metrics = make_metrics(config, clock, env)
    checks: dict[str, Check] = {}
    for pool in config.pools:
        checks[f"{pool.name}: {pool.backend.kind}"] = partial(_fleet, pool, clock, env)
        checks[f"{pool.name}: other autoscalers"] = partial(_others, pool, clock, env)
        checks[f"{pool.name}: demand query"] = partial(
            _demand, pool, metrics, clock, config.metrics.max_staleness
        )
    if config.slack is not None:
        checks[f"slack: {config.slack.channel}"] = partial(_slack, config, env)
    election = config.leader_election
    if election is not None:
        checks[f"leader_election: {election.kind} lock {election.name!r}"] = partial(
            _lock, election, env
        )
    return checks


def _fleet(pool: Pool, clock: Clock, env: Mapping[str, str]) -> str:
    make_backend(pool.backend, clock, env).check()
    return "reachable, target exists"


def _others(pool: Pool, clock: Clock, env: Mapping[str, str]) -> str:
    """Another autoscaler on the fleet fails the check; a fleet that cannot be asked (RBAC
    without the rule, a timeout) passes with why: the daemon runs without the answer too."""
    backend = make_backend(pool.backend, clock, env)
    try:
        found = other_autoscalers(backend)
    except Exception as exc:
        said = exc if isinstance(exc, BackendError) else f"unexpected {type(exc).__name__}"
        return redact(f"not checked: could not check for another autoscaler: {said}")
    if found:
        raise BackendError(check_failure(found))
    return "none found"


def _demand(pool: Pool, metrics: MetricsSource, clock: Clock, max_staleness: timedelta) -> str:
    """The query as a tick runs it: empty, stale, NaN or several series all fail."""
    now = clock.now()
    series = fetch_demand(metrics, pool.demand, now, max_staleness).series
    # whole seconds: a staleness bound is minutes, and "19904.627ms" reads as neither
    age = format_duration(
        timedelta(seconds=max(round((now - series.index[-1]).total_seconds()), 0))
    )
    return f"{len(series)} samples over {format_duration(pool.demand.window)}, newest {age} old"


def _slack(config: Config, env: Mapping[str, str]) -> str:
    assert config.slack is not None
    notifier = SlackNotifier.from_config(config.slack, env)
    return f"token valid ({notifier.check_token()}); {notifier.check_channel()}"


def _lock(election: LeaderElection, env: Mapping[str, str]) -> str:
    holder = make_leader_lock(election, env).peek()
    return f"reachable, {f'held by {holder}' if holder else 'not taken yet'}"


def run_checks(checks: dict[str, Check], out: Console, err: Console) -> list[str]:
    """Run every check; a line each (found on `out`, failed on `err`); the failed ones."""
    failed = []
    for what, check in checks.items():
        try:
            found = check()
        except Exception as exc:  # one failed line each, the rest still run
            failed.append(what)
            said = (
                exc
                if isinstance(exc, FAILURES)
                else redact(f"unexpected {type(exc).__name__}: {exc}")
            )
            err.print(f"FAILED {what}: {said}", highlight=False, markup=False)
        else:
            out.print(f"  {what}: {found}", highlight=False, markup=False)
    return failed
