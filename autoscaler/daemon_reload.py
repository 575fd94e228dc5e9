"""Changing a running daemon's settings between ticks: a SIGHUP reload of the config and
the overrides file, re-read when it changes.

Its own room because the rules of a reload (a broken config keeps the old one running
and alerts; start-only settings wait for a restart; a broken overrides file keeps the
last good one) are apart from scheduling ticks. `Daemon` takes these methods in as a
mixin and owns the state they read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from autoscaler.config.loader import load_config, read_overrides_document
from autoscaler.config.problems import ConfigError
from autoscaler.config.schema import Config
from autoscaler.config.validate import unknown_override_pools
from autoscaler.config.yaml_reader import YamlDocument
from autoscaler.notify import Notifier
from autoscaler.notify_queue import QueuedNotifier, count_failures
from autoscaler.overrides import OverridesFile
from autoscaler.runtime import Runtime, build_runtime, orphaned_drains
from autoscaler.state import PoolState
from autoscaler.telemetry import Telemetry

log = logging.getLogger("autoscaler.daemon")  # the daemon's logger, as before the split

START_ONLY = (
    "interval",
    "state_dir",
    "telemetry",
    "leader_election",
    "simulation",
    "digest",
    "fit_workers",
)
"""Settings read once at start: the tick schedule, where state lives, the metrics listener,
the leader lock (swapping it live could let a standby act beside this daemon), the
simulated clock and the first tick's fit workers. A reload keeps the running values and
says a restart applies them."""


def carry_learning(running: Runtime, reloaded: Runtime) -> int:
    """Pools configured the same before and after a reload, reading the same metrics
    source, keep their predictors: a reload must not throw away a fortnight of history
    and a week of loop calibration (nor make the next tick refit every pool from
    scratch). Returns how many did."""
    if running.config.metrics != reloaded.config.metrics:
        return 0
    before = {ticker.pool.name: ticker for ticker in running.tickers}
    return sum(
        ticker.carry_over(before[ticker.pool.name])
        for ticker in reloaded.tickers
        if ticker.pool.name in before
    )


def keep_simulated_fleets(running: Runtime, reloaded: Runtime) -> None:
    """A pool on a simulated fleet whose backend settings stay keeps that fleet: it is the
    world a simulation plays in, not a client to connect afresh. Rebuilt, it went back to
    `initial_nodes`, and the next tick took that for someone scaling the pool by hand."""
    before = {ticker.pool.name: ticker for ticker in running.tickers}
    for ticker in reloaded.tickers:
        previous = before.get(ticker.pool.name)
        settings = ticker.pool.backend
        if (
            previous is not None
            and settings.kind == "simulated"
            and previous.pool.backend == settings
        ):
            ticker.backend = previous.backend


def keep_notifier(running: Runtime, reloaded: Runtime) -> None:
    """What the running Slack sender has queued is neither lost nor sent twice by a
    reload: where Slack's settings stay, the reloaded runtime keeps the running sender
    (its queue, its pace, its circuit breaker); where they change, the new sender takes
    the queue over and the old one ends after the post it has in hand; where Slack is
    gone from the config, the old one posts what it holds and ends."""
    old, new = running.notifier, reloaded.notifier
    if not isinstance(old, QueuedNotifier):
        return
    if not isinstance(new, QueuedNotifier):
        old.close(wait=False)
        return
    if not old.sender.same_target(new.sender):
        new.take_over(old)
        return
    reloaded.notifier = old
    for ticker in reloaded.tickers:
        ticker.notifier = old


def let_go(replaced: Runtime) -> None:
    """Close what a runtime a reload replaced holds open: the Prometheus source's session
    and the thread it keeps for its calls, which the new runtime opens afresh (left open,
    each reload kept one more of each for the life of the daemon)."""
    close = getattr(replaced.metrics, "close", None)
    if close is not None:
        close()


def start_only_changes(running: Config, loaded: Config) -> list[str]:
    """The start-only settings that differ between the running config and a reloaded one."""
    return [name for name in START_ONLY if getattr(running, name) != getattr(loaded, name)]


class ConfigReloads:
    """Reload and overrides handling for `autoscaler.daemon.Daemon`, which sets these."""

    config_path: Path
    dry_run: bool
    env: Mapping[str, str]
    runtime: Runtime
    overrides: OverridesFile
    states: dict[str, PoolState]
    _stuck: set[str]
    _notifier_override: Notifier | None
    _overrides_seen: tuple[int, ...] | None
    _overrides_problem: str | None
    _overrides_unknown: str | None
    _reload_requested: threading.Event
    telemetry: Telemetry
    _alert: Callable[[str], None]
    _guard_writes: Callable[[Runtime], None]

    def request_reload(self) -> None:
        self._reload_requested.set()

    def _reload(self) -> None:
        try:
            config = load_config(self.config_path)
            kept = start_only_changes(self.runtime.config, config)
            config = config.model_copy(
                update={name: getattr(self.runtime.config, name) for name in kept}
            )
            new = build_runtime(
                config,
                source=self.config_path,
                dry_run=self.dry_run,
                env=self.env,
                notifier=self._notifier_override,
                clock=self.runtime.clock,
            )
        except (ConfigError, ValueError, OSError) as exc:
            self._alert(f"config reload failed; the previous config keeps running:\n{exc}")
            return
        self._guard_writes(new)
        carried = carry_learning(self.runtime, new)
        keep_simulated_fleets(self.runtime, new)
        keep_notifier(self.runtime, new)
        count_failures(new.notifier, self.telemetry.notification_failed)
        replaced, self.runtime = self.runtime, new
        let_go(replaced)
        names = {pool.name for pool in config.pools}
        self.telemetry.keep_pools(names)
        # A removed pool's memory is no one's now: kept, every pool a reload ever removed
        # stayed in memory and in the state file each tick rewrites, for good.
        self.states = {name: state for name, state in self.states.items() if name in names}
        self._stuck &= names  # one that comes back has no tick left behind to recover from
        self._overrides_seen = None
        log.info(
            "config reloaded from %s (%d pools, %d of them unchanged: they keep what they "
            "have learned)",
            self.config_path,
            len(config.pools),
            carried,
        )
        if kept:
            self._alert(
                f"config reloaded, but {', '.join(kept)} changed in {self.config_path} and "
                "take effect only after a restart; still running with the old values"
            )
        self._say_orphaned_drains()

    def _say_orphaned_drains(self) -> None:
        """At the start and after a reload: a drain left by a pool no longer configured."""
        for pool, path in orphaned_drains(self.runtime.config).items():
            self._alert(
                f"scale-in record {path} is of pool {pool!r}, "
                "no longer in the config: its nodes stay drained and ineligible, counted by "
                "their group, until the pool is back or someone finishes the drain by hand"
            )

    def _refresh_overrides(self) -> None:
        """Re-read the overrides file when it changes (its stat: time, size, inode), not
        every tick; a broken one keeps the last good one and is told once, with where."""
        path = self.runtime.config.overrides_file
        if path is None:
            if self.overrides.overrides:  # a reload took `overrides_file` out of the config
                pools = ", ".join(sorted(self.overrides.overrides))
                self._alert(
                    f"overrides_file is no longer in the config; the overrides of {pools} "
                    "are lifted"
                )
            self.overrides = OverridesFile()
            return
        seen = _file_fingerprint(path)
        if seen == self._overrides_seen:
            return
        if seen == () and self._overrides_seen and self.overrides.overrides:
            # Missing means no overrides (as at start), but a pinned fleet may now shrink.
            pools = ", ".join(sorted(self.overrides.overrides))
            self._alert(f"overrides file {path} was removed; the overrides of {pools} are lifted")
        self._overrides_seen = seen
        try:
            overrides, document = read_overrides_document(path)
        except ConfigError as exc:
            # At a start (or `--once`) there is no last good one: its pins are not held.
            kept = (
                "keeping the last good overrides"
                if self.overrides.overrides
                else "no override is in force until it reads"
            )
            self._keep_last_good(f"overrides file is broken; {kept}:\n{exc}")
            return
        if document is not None and document.data is None and self.overrides.overrides:
            # Blank: as an editor that truncates first (nano, `cat >`) leaves it mid-write.
            pools = ", ".join(sorted(self.overrides.overrides))
            self._keep_last_good(
                f"overrides file {path} is empty, as while it is being written; the overrides "
                f"of {pools} stay in force (remove the file, or write `overrides: {{}}`, to "
                "lift them)"
            )
            return
        self.overrides = overrides
        if self._overrides_problem is not None:
            self._alert(f"overrides file {path} is readable again; overrides in force")
        self._overrides_problem = None
        self._say_unknown_pools(document, path)

    def _keep_last_good(self, problem: str) -> None:
        """Told once for each new problem, not at every tick it lasts."""
        if problem != self._overrides_problem:
            self._alert(problem)
        self._overrides_problem = problem

    def _say_unknown_pools(self, document: YamlDocument | None, path: Path) -> None:
        """An override naming no pool of the config (a typo, a pool renamed by a reload)
        does nothing, as `validate` says; the daemon says so too, once for each change."""
        config = self.runtime.config
        now = self.runtime.clock.now()
        problems = unknown_override_pools(config, self.overrides, document, path, now)
        unknown = "\n".join(str(problem) for problem in problems) or None
        if unknown is not None and unknown != self._overrides_unknown:
            self._alert(f"overrides for no pool of the config do nothing:\n{unknown}")
        self._overrides_unknown = unknown


def _file_fingerprint(path: Path) -> tuple[int, ...]:
    """What changes when a file is edited, replaced or made readable; () when missing."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return ()
    except OSError as exc:
        return (-1, exc.errno or 0)
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
