"""The daily digest's adapter: read the decision log and the demand, build each pool's
digest (autoscaler/digest.py), and say it in a few lines for Slack and the terminal.

Demand comes from the metrics source (the pool's own query, one-minute steps); when
the source cannot answer, from the decision log's `demand_rps`, and the digest says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pandas as pd

from autoscaler.config.capacity import per_node_rps_of
from autoscaler.config.schema import Config, Pool
from autoscaler.decision_log_read import LOOKBACK, LogRead, read_records
from autoscaler.digest import (
    QUEUE_WARMUP,
    DigestSettings,
    LoggedTick,
    PoolDigest,
    tick_digest,
)
from autoscaler.metrics import MetricsError, MetricsSource
from autoscaler.notify import (
    SECTION_TEXT_LIMIT,
    Attachment,
    Message,
    escape_mrkdwn,
    section_block,
)
from autoscaler.schedules import wall_time_to_instant

log = logging.getLogger(__name__)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
MAX_BLOCKS = 50  # Slack's limit per message


@dataclass(frozen=True)
class DayReport:
    start: datetime
    end: datetime
    digests: list[PoolDigest]
    demand_from_log: list[str]
    """Pools whose demand came from the decision log (the metrics source failed)."""
    unreadable_lines: int
    first_unreadable: str | None = None
    """The first unreadable line, as 'FILE:LINE: why'."""
    no_records: str | None = None
    """The pools the decision log says nothing of in the window, and where it was read."""
    no_record_before: datetime | None = None
    """The decision log's first line after the window opens, where none (in the log or its
    rotated files) is before it or within an interval after (rotated away for good, or
    the log is newer): the hours before it have no record, which the report says."""
    silent: tuple[tuple[datetime, datetime], ...] = ()
    """Spans of the window in which no pool's decision was logged for longer than
    SILENT_TICKS intervals, from its start where the daemon stopped before it (silent_spans)."""
    joined: tuple[tuple[str, datetime], ...] = ()
    """Pools whose first line comes later than the others' (added or renamed by a reload
    then), with its time: their fleet before it is the count their first tick found."""
    title: str = "Daily digest"
    """The heading's words before the span: `autoscaler report` names its own span, which
    need not be a day."""


SILENT_TICKS = 3
"""A span without any pool's decision longer than this many intervals is said."""
SILENT_SAID = 5
"""At most this many such spans are named in a report; the rest are counted."""


def silent_spans(
    times: Sequence[datetime], start: datetime, end: datetime, interval: timedelta
) -> tuple[tuple[datetime, datetime], ...]:
    """The spans of [start, end) in which no decision was logged for longer than
    SILENT_TICKS intervals: the daemon stopped, its ticks did not finish, or (under
    leader_election) another replica led and logged on its own host. Its fleets kept their
    counts then, as the report reckons them; the report says which hours those are, rather
    than let a reader take them for the daemon's decisions. `times` holds the lines before
    the window too: a daemon stopped since the evening before leaves the window's first
    hours silent (a span cut at `start`). Before the log's first line is no_record_before's."""
    inside = sorted(t for t in times if start <= t < end)
    before = [t for t in times if t < start]
    edges = [max(before), *inside] if before else inside
    gap = interval * SILENT_TICKS
    spans = [(max(a, start), b) for a, b in pairwise(edges) if b - a > gap]
    if edges and end - edges[-1] > gap:
        spans.append((max(edges[-1], start), end))
    return tuple(spans)


def digest_settings(pool: Pool, per_node_rps: float | None = None) -> DigestSettings:
    """`per_node_rps`: the rate the daemon sized with (its profile read at start or reload);
    without it the profile is read now, and a broken one is a ConfigError."""
    return DigestSettings(
        per_node_rps=per_node_rps_of(pool.capacity) if per_node_rps is None else per_node_rps,
        target_utilization=pool.target_utilization,
        min_nodes=pool.min_nodes,
        boot_time=pool.boot_time,
        horizon=pool.horizon,
        latency_target_s=pool.predictor.latency_target_s,
        price_per_node_hour=pool.price_per_node_hour,
    )


def build_report(
    config: Config,
    metrics: MetricsSource,
    start: datetime,
    end: datetime,
    pools: list[str],
    per_node_rps: Mapping[str, float] | None = None,
) -> DayReport:
    """Each pool's day; `per_node_rps` by pool, as the daemon sized (digest_settings).
    The span's edges are taken down to whole minutes, the grid both the metrics and the
    log's demand are read on: an edge at 00:00:30 put every minute between two samples,
    and the whole span read as no data."""
    start, end = _whole_minute(start), _whole_minute(end)
    read = (
        read_records(config.decision_log, start, end)
        if config.decision_log
        else LogRead([], 0, None, None)
    )
    by_pool: dict[str | None, list[LoggedTick]] = {}
    for tick in read.records:
        by_pool.setdefault(tick.pool, []).append(tick)
    digests, from_log, silent, joined = [], [], [], []
    opened = pd.Timestamp(start)  # or the log's first line, where the daemon began later
    since = max(opened, min((t.at for t in read.records), default=opened)) + config.interval
    for pool in config.pools:
        if pools and pool.name not in pools:
            continue
        mine = by_pool.get(pool.name, [])
        if not mine:
            silent.append(pool.name)
        elif (first := min(t.at for t in mine)) > since:
            joined.append((pool.name, first.to_pydatetime()))
        try:
            demand = metrics.demand(pool.demand.query, start - QUEUE_WARMUP, end, MINUTE)
        except MetricsError as exc:
            log.warning("digest: %s: demand from the decision log (%s)", pool.name, exc)
            demand = _logged_demand(mine)
            from_log.append(pool.name)
        settings = digest_settings(pool, (per_node_rps or {}).get(pool.name))
        digests.append(tick_digest(pool.name, mine, demand, settings, start, end))
    where = config.decision_log or "the config sets no decision_log"
    no_records = f"{', '.join(silent)} (in {where})" if silent else None
    begins = read.oldest.tz_convert("UTC").to_pydatetime() if read.oldest is not None else None
    late = begins if begins is not None and begins > start + config.interval else None
    logged = [t.at for t in read.records]
    if read.oldest is not None and read.oldest < start and not any(t < start for t in logged):
        logged.append(start - LOOKBACK)  # the last line is older than the lines read before
    silent = silent_spans(logged, start, end, config.interval)
    return DayReport(
        start,
        end,
        digests,
        from_log,
        read.unreadable,
        read.first_unreadable,
        no_records,
        late,
        silent,
        tuple(joined),
    )


def _whole_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _logged_demand(ticks: list[LoggedTick]) -> pd.Series:
    pairs = [(t.at.floor("min"), t.demand_rps) for t in ticks if t.demand_rps is not None]
    if not pairs:
        return pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float)
    series = pd.Series([v for _, v in pairs], index=pd.DatetimeIndex([t for t, _ in pairs]))
    return series[~series.index.duplicated(keep="last")].astype(float)


def send_digest(config: Config, metrics: MetricsSource, notifier: object, end: datetime) -> bool:
    """The day before `end`, on Slack with each pool's PNG (when plots are installed and
    `digest.plot`). False when Slack did not take it."""
    post = digest_post(config, metrics, notifier, end)
    return post is not None and post()


def digest_post(
    config: Config,
    metrics: MetricsSource,
    notifier: object,
    end: datetime,
    per_node_rps: Mapping[str, float] | None = None,
) -> Callable[[], bool] | None:
    """The digest of the local day before `end`, built (the decision log and the metrics
    source read, the PNGs drawn), and the call that posts it, which the daemon makes
    outside its tick lock: a slow Slack must not hold the ticks. None without Slack."""
    send = getattr(notifier, "send_with_files", None)
    if send is None:  # no Slack configured (the log notifier), or a dry run
        log.info("digest: no Slack to send it to")
        return None
    digest = config.digest
    start = local_day_before(end, digest.timezone, digest.at) if digest else end - DAY
    report = build_report(config, metrics, start, end, [], per_node_rps)
    currency = config.digest.currency if config.digest else "USD"
    files: list[Attachment] = []
    if config.digest is None or config.digest.plot:
        try:
            files = attachments(report)
        except ValueError as exc:  # common.extras.MissingExtra: matplotlib not installed
            log.warning("digest: sent without PNGs (%s)", exc)
    message = report_message(report, currency)
    return lambda: bool(send(message, files))


def local_day_before(end: datetime, timezone: str, at: time | None = None) -> datetime:
    """The same local clock time a local day before `end`: the day a digest covers has 23
    or 25 hours when the clocks change in it (24 hours before lost one hour of the autumn
    night from every digest, and counted one of the spring night in two). Where `end` is
    the jump that stands for a digest time `at` the clocks skipped (02:30 on the spring
    night goes at 03:00), the day before begins at its `at`: from 03:00, the half hour
    after the day before's digest was in none."""
    zone = ZoneInfo(timezone)
    local = end.astimezone(zone)
    due = at is not None and wall_time_to_instant(local.date(), at, zone) == end
    return wall_time_to_instant(local.date() - DAY, at if due else local.time(), zone)


def attachments(report: DayReport) -> list[Attachment]:
    """Each pool's PNG of the day (needs the `plots` extra: MissingExtra otherwise)."""
    from autoscaler.cli.plots import digest_png  # matplotlib: only when a digest is drawn

    day = f"{report.start:%Y%m%d-%H%M}"
    return [
        Attachment(f"{d.pool}-{day}.png", f"{d.pool}: demand, capacity and nodes", digest_png(d))
        for d in report.digests
    ]


# ---- words -----------------------------------------------------------------------


def _money(value: float | None, currency: str) -> str:
    return "no price set" if value is None else f"{currency} {value:,.2f}"


def share_text(value: float | None, space: str = " ") -> str:
    """A share to two decimals, but never 0 or 100 % where it is not: 1 late request in
    a million printed "100.00 % on time", read as none late. `space`: before the %."""
    if value is None:
        return "n/a"
    if 0 < value < 0.00005:
        return f"< 0.01{space}%"
    if 0.99995 <= value < 1:
        return f"> 99.99{space}%"
    return f"{100 * value:.2f}{space}%"


def _versus(other: float | None, ours: float | None) -> str:
    if other is None or ours is None or ours <= 0:
        return ""
    return f" ({100 * (other / ours - 1):+.0f} % vs ours)"


def pool_lines(digest: PoolDigest, currency: str) -> list[str]:
    """A pool's day in a few short lines (plain text; Slack escapes them)."""
    fleet, static, reactive = digest.fleet, digest.static, digest.reactive
    cost = fleet.cost if fleet.cost is not None else fleet.node_hours
    lines = [
        f"{digest.pool}: {fleet.node_hours:,.1f} node-hours, {_money(fleet.cost, currency)}",
        f"  service: {share_text(digest.service_level)} on time ({digest.late_requests:,.0f} of "
        f"{digest.requests:,.0f} requests late, {digest.late_minutes} minutes with late "
        f"requests; {digest.minutes_with_data}/{digest.minutes} minutes with demand data)",
    ]
    if digest.forecast_wape is not None and digest.forecast_bias is not None:
        lines.append(
            f"  forecast error: {100 * digest.forecast_wape:.1f} % of the peak demand "
            f"(bias {100 * digest.forecast_bias:+.1f} %, {digest.forecasts_scored} forecasts)"
        )
    actions = f"  scale actions: {digest.scale_ups} up, {digest.scale_downs} down"
    if digest.would_actions:
        actions += f", {digest.would_actions} dry-run"
    if digest.error_ticks:
        actions += f"; {digest.error_ticks} ticks with errors"
    lines.append(actions)
    if digest.overrides:
        used = ", ".join(f"{why!r} ({ticks} ticks)" for why, ticks in digest.overrides.items())
        lines.append(f"  overrides: {used}")
    if static is not None:
        other = static.cost if static.cost is not None else static.node_hours
        lines.append(
            f"  static fleet at the day's peak ({digest.static_nodes} nodes): "
            f"{static.node_hours:,.1f} node-hours, {_money(static.cost, currency)}"
            + _versus(other, cost)
        )
    if reactive is not None:
        other = reactive.cost if reactive.cost is not None else reactive.node_hours
        lines.append(
            f"  reactive fleet (HPA rule): {reactive.node_hours:,.1f} node-hours, "
            f"{_money(reactive.cost, currency)}{_versus(other, cost)}, "
            f"{share_text(reactive.late_share)} late"
        )
    return lines


def report_text(report: DayReport, currency: str) -> str:
    head = f"{report.title} {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC"
    lines = [head]
    for digest in report.digests:
        lines += pool_lines(digest, currency)
    return "\n".join(lines + report_notes(report))


def report_notes(report: DayReport) -> list[str]:
    """What the figures above rest on, where it is less than the whole day's data."""
    lines = []
    begins = report.no_record_before
    if begins is not None:
        lines.append(
            f"no decision-log record from {report.start:%Y-%m-%d %H:%M} to "
            f"{min(begins, report.end):%Y-%m-%d %H:%M} UTC, in the log or its rotated files: "
            + (
                "each pool's fleet in those hours is the count its first tick after found"
                if begins < report.end
                else f"its first line is at {begins:%Y-%m-%d %H:%M}"
            )
        )
    if report.silent:
        named = ", ".join(
            f"{a:%m-%d %H:%M} to {b:%m-%d %H:%M}" for a, b in report.silent[:SILENT_SAID]
        )
        more = len(report.silent) - SILENT_SAID
        lines.append(
            f"no decision logged from {named}{f' and {more} more spans' if more > 0 else ''} "
            "UTC (the daemon stopped or its ticks did not finish, or another replica led): "
            "fleets kept the counts they had"
        )
    if report.joined:
        named = ", ".join(f"{pool} from {at:%m-%d %H:%M}" for pool, at in report.joined)
        lines.append(
            f"decision-log lines only since they were added or renamed: {named} UTC; "
            "each one's fleet before then is the count its first tick found"
        )
    if report.no_records:
        lines.append(
            f"no decision-log lines in this span for {report.no_records}: their fleet is "
            "not known and counts as 0 nodes above"
        )
    if report.demand_from_log:
        lines.append(
            "demand from the decision log (metrics unavailable): "
            + ", ".join(report.demand_from_log)
        )
    if report.unreadable_lines:
        lines.append(
            f"{report.unreadable_lines} unreadable decision-log lines skipped"
            + (f" (first: {report.first_unreadable})" if report.first_unreadable else "")
        )
    return lines


def report_message(report: DayReport, currency: str) -> Message:
    """The text (the notification fallback) and the blocks Slack shows: the heading, the
    pools in as few sections as hold them, and the notes. Pools past Slack's 50 blocks
    are counted in the notes, never left out without a word."""
    text = escape_mrkdwn(report_text(report, currency))  # quotes people's text: no mention
    bodies = [escape_mrkdwn("\n".join(pool_lines(d, currency))) for d in report.digests]
    groups = _packed(bodies, SECTION_TEXT_LIMIT - 6)
    notes = report_notes(report)
    room = MAX_BLOCKS - 2  # the heading and the notes
    if len(groups) > room:
        left = sum(len(group) for group in groups[room:])
        notes.insert(0, f"{left} more pools past Slack's 50 blocks: `autoscaler report` has all")
        groups = groups[:room]
    head = text.partition("\n")[0]
    blocks = [section_block(f"*{head}*")]
    blocks += [section_block("```" + "\n\n".join(group) + "```") for group in groups]
    if notes:
        blocks.append(section_block(escape_mrkdwn("\n".join(notes))[:SECTION_TEXT_LIMIT]))
    return Message(text=text, blocks=blocks)


def _packed(bodies: list[str], limit: int) -> list[list[str]]:
    """Consecutive pools' lines, as many to a section as its `limit` of characters holds
    (a blank line between two)."""
    groups: list[list[str]] = []
    size = limit
    for body in (b[:limit] for b in bodies):
        if size + 2 + len(body) > limit:
            groups.append([])
            size = -2
        groups[-1].append(body)
        size += 2 + len(body)
    return groups
