"""A replayed trace answers like Prometheus and never shows the future."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from autoscaler.config.loader import load_config
from autoscaler.metrics import MetricsError
from autoscaler.replay import read_queue_depth, read_trace
from autoscaler.replay_source import TraceReplaySource
from autoscaler.runtime import make_metrics
from common.clock import SimulatedClock
from tests.traces import NASA

T0 = datetime(2025, 1, 5, 16, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
QUERY = "sum(rate(requests_total[1m]))"


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    """Two hours at one line a minute; requests in minute i are 60 * i (so i req/s)."""
    lines = ["timestamp,requests"]
    lines += [f"{T0 + i * MINUTE:%Y-%m-%dT%H:%M:%SZ},{60 * i}" for i in range(120)]
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_trace_gives_requests_per_second_in_utc(trace_file: Path) -> None:
    trace = read_trace(trace_file)
    assert len(trace) == 120
    assert str(trace.index.tz) == "UTC"
    assert trace.index[0] == pd.Timestamp(T0)
    assert trace.iloc[0] == 0.0
    assert trace.iloc[90] == pytest.approx(90.0)  # 5400 requests in a minute = 90 req/s


def test_read_trace_rejects_other_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("time,count\n2025-01-05T16:00:00Z,5\n")
    with pytest.raises(ValueError, match="expected columns timestamp,requests"):
        read_trace(path)


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("timestamp;requests", "found 'timestamp;requests'; fields are separated by commas"),
        ("2025-01-05T16:00:00Z,5", "found '2025-01-05T16:00:00Z,5'; this is a row: a trace"),
        ("1736092800,5", "found '1736092800,5'; this is a row: a trace begins with the header"),
        ("Timestamp,Requests", "found 'Timestamp,Requests'"),
    ],
)
def test_a_header_not_the_traces_names_its_line_and_what_it_found(
    tmp_path: Path, header: str, said: str
) -> None:
    """It said only 'expected columns timestamp,requests', the same for a semicolon file
    whose names are right as for a file with no header at all."""
    path = tmp_path / "export.csv"
    path.write_text(f"{header}\n2025-01-05T16:01:00Z,5\n")
    with pytest.raises(ValueError) as refused:
        read_trace(path)
    assert str(refused.value).startswith(f"{path}:1: header: expected columns timestamp,requests")
    assert said in str(refused.value)


@pytest.mark.parametrize("stamp", ["2025-01-05 11:00:00", "2025-01-05T11:00", "2025-01-05"])
def test_a_time_without_a_zone_is_refused_naming_its_line(tmp_path: Path, stamp: str) -> None:
    """Read as UTC, a spreadsheet's or a dashboard's local times (New York's here) put the
    traffic hours off its clock (its schedules, its predictor's time zone), without a word."""
    path = tmp_path / "local.csv"
    path.write_text(f"timestamp,requests\n2025-01-05T16:00:00Z,5\n{stamp},7\n")
    with pytest.raises(ValueError) as refused:
        read_trace(path)
    assert str(refused.value).startswith(f"{path}:3: timestamp: {stamp!r} has no zone")
    for zoned in ("2025-01-05T11:01:00-05:00", "2025-01-05 16:01Z", "2025-01-05T17:01:00+0100"):
        path.write_text(f"timestamp,requests\n2025-01-05T16:00:00Z,5\n{zoned},7\n")
        assert list(read_trace(path).index.minute) == [0, 1]


def test_an_iso_time_before_1990_is_refused_as_a_unix_one_is(tmp_path: Path) -> None:
    """A time lost in the export (1970-01-01, the epoch) made the backtest's minute grid 55
    years long: 3 GB and still filling a minute later, where a Unix 0 is refused."""
    path = tmp_path / "export.csv"
    path.write_text(
        "timestamp,requests\n2025-01-05T16:00:00Z,5\n1970-01-01T00:00:00Z,0\n"
        "2025-01-05T16:01:00Z,7\n"
    )
    with pytest.raises(ValueError) as refused:
        read_trace(path)
    assert str(refused.value).startswith(
        f"{path}:3: timestamp: '1970-01-01T00:00:00Z' is before 1990"
    )


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_a_compressed_trace_cut_short_is_named_not_aborted(tmp_path: Path, suffix: str) -> None:
    """A download cut short raised EOFError (typer's 'Aborted.', exit 1, no file named, in
    backtest and validate alike) and damaged xz data LZMAError (a traceback)."""
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}[suffix]
    rows = "".join(
        f"2025-01-05T{hour:02d}:{minute:02d}:00Z,{minute}\n"
        for hour in range(24)
        for minute in range(60)
    )
    whole = compress(f"timestamp,requests\n{rows}".encode())
    path = tmp_path / f"trace.csv{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not a whole \{suffix} file"):
        read_trace(path)
    path.write_bytes(whole)
    assert len(read_trace(path)) == 1440
    damaged = tmp_path / "damaged.csv.xz"
    damaged.write_bytes(b"timestamp,requests\n")  # named .xz, not xz data
    with pytest.raises(ValueError, match=r"damaged\.csv\.xz: not a whole \.xz file"):
        read_trace(damaged)


def test_blank_lines_before_the_header_are_skipped_as_between_rows(tmp_path: Path) -> None:
    path = tmp_path / "padded.csv"
    path.write_text("\n\ntimestamp,requests,queue_depth\n2025-01-05T16:00:00Z,60,4\n")
    assert read_trace(path).iloc[0] == 1.0
    queue = read_queue_depth(path)
    assert queue is not None and queue.iloc[0] == 4.0


BAD_ROWS = {
    "word": ("2025-01-05T16:01:00Z,abc", "requests: 'abc' is not a number"),
    "thousands": ('2025-01-05T16:01:00Z,"1,106"', "requests: '1,106' is not a number"),
    "negative": ("2025-01-05T16:01:00Z,-50", "requests: '-50' is not a count (finite, at least 0)"),
    "infinite": ("2025-01-05T16:01:00Z,inf", "requests: 'inf' is not a count (finite, at least 0)"),
    "time": (
        "yesterday,5",
        "timestamp: 'yesterday' is not an ISO 8601 time (e.g. 2025-01-05T16:00:00Z) "
        "nor Unix seconds (every row a number)",
    ),
    "seconds": (
        "2025-01-05T16:00:30Z,5",
        "timestamp: '2025-01-05T16:00:30Z' is not a whole minute "
        "(a trace has one row a minute, its requests in that minute)",
    ),
    "short": ("2025-01-05T16:01:00Z", "expected 2 fields (timestamp,requests), found 1"),
    "long": ("2025-01-05T16:01:00Z,5,7", "expected 2 fields (timestamp,requests), found 3"),
}


@pytest.mark.parametrize("name", BAD_ROWS)
def test_a_bad_row_names_the_file_line_and_field(tmp_path: Path, name: str) -> None:
    """Line 4 (after a header, a row and a blank line) is refused, never read as a number."""
    row, reason = BAD_ROWS[name]
    path = tmp_path / "bad.csv"
    path.write_text(f"timestamp,requests\n2025-01-05T16:00:00Z,5\n\n{row}\n")
    with pytest.raises(ValueError) as caught:
        read_trace(path)
    assert str(caught.value) == f"{path}:4: {reason}"


@pytest.mark.parametrize("unit", [1, 1000])
def test_unix_times_read_as_the_same_minutes(trace_file: Path, tmp_path: Path, unit: int) -> None:
    """Prometheus's HTTP API and promtool give Unix seconds (`1736092800.000`), a
    dashboard's export milliseconds: the same minutes as the ISO 8601 file."""
    rows = [f"{(T0 + i * MINUTE).timestamp() * unit:.3f},{60 * i}" for i in range(120)]
    path = tmp_path / "unix.csv"
    path.write_text("timestamp,requests\n" + "\n".join(rows) + "\n")
    pd.testing.assert_series_equal(read_trace(path), read_trace(trace_file))


UNIX_ROWS = {
    "an ISO time after a number": ("2025-01-05T16:01:00Z", "'2025-01-05T16:01:00Z' is not a"),
    "off the minute": ("1736092830", "'1736092830' is not a whole minute"),
    "beyond 2262": ("1e16", "'1e16' is not a Unix time (seconds or milliseconds from 1990"),
    "negative": ("-60", "'-60' is not a Unix time"),
    "empty": ("", "'' is not a Unix time"),
    "seconds from the start": ("60", "'60' is not a Unix time"),
}


@pytest.mark.parametrize("name", UNIX_ROWS)
def test_a_unix_time_that_does_not_read_names_its_line(tmp_path: Path, name: str) -> None:
    """Where the first row's time is a number, every row's must be a Unix time (seconds or
    milliseconds, 1990 to 2262, a whole minute): anything else is refused naming its own
    line, never read as another minute (a negative number as a year, seconds from the
    trace's start as 1970)."""
    row, reason = UNIX_ROWS[name]
    path = tmp_path / "bad.csv"
    path.write_text(f"timestamp,requests\n1736092800,5\n{row},7\n")  # the row is line 3
    with pytest.raises(ValueError, match=f"^{re.escape(f'{path}:3: timestamp: {reason}')}"):
        read_trace(path)


def test_a_number_after_iso_times_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,requests\n2025-01-05T16:00:00Z,5\n1736092860,7\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}:3: timestamp: '1736092860'"):
        read_trace(path)


def test_a_minute_given_twice_with_two_values_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(
        "timestamp,requests\n2025-01-05T16:00:00Z,5\n2025-01-05T16:01:00Z,7\n"
        "2025-01-05T16:00:00Z,9\n"
    )
    with pytest.raises(ValueError) as caught:
        read_trace(path)
    assert str(caught.value) == (
        f"{path}:4: requests: 2025-01-05T16:00:00Z is given twice, on line 2 as 5 and here as 9"
    )


def test_rows_come_in_time_order_and_an_exact_repeat_once(tmp_path: Path) -> None:
    path = tmp_path / "unsorted.csv"
    path.write_text(
        "timestamp,requests\n2025-01-05T16:01:00Z,120\n2025-01-05T16:00:00Z,60\n"
        "2025-01-05T16:01:00Z,120\n2025-01-05T16:02:00Z,\n2025-01-05T16:02:00Z,\n"
    )
    trace = read_trace(path)
    assert list(trace.index) == list(pd.date_range(T0, periods=3, freq="1min"))
    assert trace.iloc[:2].tolist() == [1.0, 2.0] and np.isnan(trace.iloc[2])


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match=f"^{path}: empty file"):
        read_trace(path)


@pytest.mark.parametrize("name", ["trace.csv", "trace.csv.gz"])
def test_a_byte_that_is_not_utf8_names_its_line(tmp_path: Path, name: str) -> None:
    """A spreadsheet's Latin-1 export: the decoder's own error gave an offset into its
    buffer; the line is what a person can find."""
    path = tmp_path / name
    text = "timestamp,requests\n2025-01-05T16:00:00Z,60\n2025-01-05T16:01:00Z,6\xb70\n"
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "wb") as file:
        file.write(text.encode("latin-1"))
    with pytest.raises(ValueError, match=f"^{path}:3: not UTF-8 text"):
        read_trace(path)


def test_a_header_without_rows_is_named(tmp_path: Path) -> None:
    """Before, an internal numpy message ("boolean index did not match ...") reached
    validate; a trace no tick can read is refused as it is read."""
    path = tmp_path / "header.csv"
    path.write_text("timestamp,requests\n\n")
    with pytest.raises(ValueError, match=f"^{path}: no rows after the header"):
        read_trace(path)


def test_empty_cells_are_missing_minutes_and_times_may_carry_an_offset(tmp_path: Path) -> None:
    """A byte-order mark, an offset instead of Z, no seconds, a space for T: all the same
    minutes; an empty or NA cell is no sample (NaN), never zero load."""
    path = tmp_path / "trace.csv"
    path.write_text(
        "\ufefftimestamp,requests\n2025-01-05T17:00:00+01:00,60\n2025-01-05T16:01Z,\n"
        "2025-01-05 16:02:00Z,NA\n2025-01-05T16:03:00Z,120.5\n",
        encoding="utf-8",
    )
    trace = read_trace(path)
    assert list(trace.index) == list(pd.date_range(T0, periods=4, freq="1min"))
    assert trace.iloc[0] == 1.0 and trace.iloc[3] == pytest.approx(120.5 / 60)
    assert trace.iloc[1:3].isna().all()


def test_rows_every_five_minutes_are_spread_over_their_minutes(tmp_path: Path) -> None:
    """An export at a 5-minute step: each row counts five minutes of requests, spread
    evenly (read as one minute each, four minutes in five would be missing). A row left
    out, or one with an empty cell, leaves its five minutes missing, not zero."""
    path = tmp_path / "five.csv"
    rows = [(0, "300"), (5, "600"), (10, ""), (15, "150"), (25, "0"), (30, "3000")]
    path.write_text(
        "timestamp,requests,queue_depth\n"
        + "".join(f"{T0 + m * MINUTE:%Y-%m-%dT%H:%M:%SZ},{n},{m}\n" for m, n in rows)
    )
    trace = read_trace(path)
    assert list(trace.index) == list(pd.date_range(T0, periods=35, freq="1min"))
    np.testing.assert_allclose(trace.iloc[0:5], 1.0)  # 300 requests over 5 minutes: 1 req/s
    np.testing.assert_allclose(trace.iloc[5:10], 2.0)
    assert trace.iloc[10:15].isna().all()  # an empty cell: no sample
    np.testing.assert_allclose(trace.iloc[15:20], 0.5)
    assert trace.iloc[20:25].isna().all()  # no row at minute 20
    np.testing.assert_allclose(trace.iloc[25:30], 0.0)  # a count of 0 is zero load
    assert trace.sum() * 60 == pytest.approx(300 + 600 + 150 + 3000)
    queue = read_queue_depth(path)
    assert queue is not None and list(queue.iloc[[0, 4, 5, 9, 17, 30, 34]]) == [
        0,
        0,
        5,
        5,
        15,
        30,
        30,
    ]


def test_a_minute_trace_with_gaps_is_read_a_minute_a_row(tmp_path: Path) -> None:
    """Most rows a minute apart: gaps of any length are missing minutes, nothing spread."""
    path = tmp_path / "gaps.csv"
    minutes = [0, 1, 2, 3, 5, 10, 11, 12, 20]
    path.write_text(
        "timestamp,requests\n"
        + "".join(f"{T0 + m * MINUTE:%Y-%m-%dT%H:%M:%SZ},60\n" for m in minutes)
    )
    trace = read_trace(path)
    assert list(trace.index) == [pd.Timestamp(T0 + m * MINUTE) for m in minutes]
    assert (trace == 1.0).all()


def test_rows_that_break_their_step_are_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "uneven.csv"
    minutes = [0, 5, 10, 15, 18, 23, 28]
    path.write_text(
        "timestamp,requests\n"
        + "".join(f"{T0 + m * MINUTE:%Y-%m-%dT%H:%M:%SZ},60\n" for m in minutes)
    )
    with pytest.raises(
        ValueError, match=r"uneven.csv:6: timestamp: most rows are 5 minutes apart.*3 after"
    ):
        read_trace(path)


def test_an_hourly_trace_with_a_mistyped_year_is_refused_before_it_is_spread(
    tmp_path: Path,
) -> None:
    """A row a day (or an hour) with one row's year mistyped (2031 for 2025): its gap is
    whole steps, so each row was spread over a minute grid of the whole span before the
    backtest's five-year check (2205 for 2025 took 28 s and 2.5 GB, and `validate` of a
    replay config with it said ok). Refused as a minute trace's is, naming the row."""
    path = tmp_path / "daily.csv"
    rows = [f"{T0 + timedelta(days=d):%Y-%m-%dT%H:%M:%SZ},1440" for d in range(4)]
    rows.insert(2, "2031-01-07T16:00:00Z,1440")
    path.write_text("timestamp,requests\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError) as refused:
        read_trace(path)
    assert str(refused.value).startswith(
        f"{path}:4: timestamp: 2031-01-07T16:00Z comes 2,190 days after the row before it "
        "(line 6, 2025-01-08T16:00Z): the trace spans 2,193 days, more than the 1,830"
    )


def test_the_daemons_replay_shows_a_coarse_row_only_once_its_minutes_have_passed(
    tmp_path: Path,
) -> None:
    """A 5-minute trace replayed by `run` (the metrics source as the runtime makes it): a
    tick at 16:13 saw the 16:10 row's mean at 16:10-16:12, three minutes of the future.
    It now sees each row from its last minute on, held until the next row ends, so the
    rows from 16:10 on can say anything: the answer is the same."""

    def answer(name: str, counts: list[int]) -> pd.Series:
        trace = tmp_path / f"{name}.csv"
        trace.write_text(
            "timestamp,requests\n"
            + "".join(
                f"{T0 + 5 * i * MINUTE:%Y-%m-%dT%H:%M:%SZ},{n}\n" for i, n in enumerate(counts)
            )
        )
        config = tmp_path / f"{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "state_dir": str(tmp_path / "state"),
                    "metrics": {"kind": "replay", "trace": str(trace)},
                    "pools": [
                        {
                            "name": "image-gen",
                            "backend": {"kind": "simulated"},
                            "demand": {"query": QUERY},
                            "capacity": {"per_node_rps": 0.25},
                            "max_nodes": 40,
                        }
                    ],
                }
            )
        )
        source = make_metrics(load_config(config), SimulatedClock(T0 + 13 * MINUTE), {})
        return source.demand(QUERY, T0, T0 + 30 * MINUTE, MINUTE)

    seen = answer("five", [300, 600, 900, 1200, 1500, 1800])
    pd.testing.assert_series_equal(seen, answer("burst", [300, 600, 9000, 0, 1500, 1800]))
    assert seen.index[-1] == pd.Timestamp(T0 + 12 * MINUTE)
    assert seen.index[0] == pd.Timestamp(T0 + 4 * MINUTE)  # nothing has ended before 16:04
    np.testing.assert_allclose(seen.iloc[:5], 1.0)  # 16:00's 300 requests, known at 16:05
    np.testing.assert_allclose(seen.iloc[5:9], 2.0)  # 16:05's 600, known at 16:10


def source_at(trace_file: Path, now: datetime) -> TraceReplaySource:
    return TraceReplaySource(read_trace(trace_file), SimulatedClock(now))


@pytest.mark.parametrize("asked_end", [30, 31, 60, 500], ids=lambda m: f"end+{m}m")
def test_demand_never_returns_samples_after_now(trace_file: Path, asked_end: int) -> None:
    """Minute 30 (30:00-31:00) is still in progress at 30:20: the newest is minute 29."""
    now = T0 + 30 * MINUTE + timedelta(seconds=20)
    source = source_at(trace_file, now)
    series = source.demand(QUERY, T0, T0 + asked_end * MINUTE, MINUTE)
    assert series.index.max() + MINUTE <= pd.Timestamp(now)
    assert series.index.max() == pd.Timestamp(T0 + 29 * MINUTE)
    assert len(series) == 30


def test_demand_moves_with_the_clock(trace_file: Path) -> None:
    clock = SimulatedClock(T0 + 10 * MINUTE)
    source = TraceReplaySource(read_trace(trace_file), clock)
    far_end = T0 + 3 * 60 * MINUTE
    assert source.demand(QUERY, T0, far_end, MINUTE).iloc[-1] == pytest.approx(9.0)
    clock.advance(25 * MINUTE)
    assert source.demand(QUERY, T0, far_end, MINUTE).iloc[-1] == pytest.approx(34.0)


def test_demand_one_minute_step_is_the_trace(trace_file: Path) -> None:
    source = source_at(trace_file, T0 + 60 * MINUTE)
    series = source.demand(QUERY, T0 + 50 * MINUTE, T0 + 60 * MINUTE, MINUTE)
    assert list(series.to_numpy()) == pytest.approx(list(range(50, 60)))


def test_demand_resamples_to_a_longer_step_ending_at_now(trace_file: Path) -> None:
    now = T0 + 59 * MINUTE
    source = source_at(trace_file, now)
    series = source.demand(QUERY, T0, now, 5 * MINUTE)
    assert series.index[-1] == pd.Timestamp(now - MINUTE)  # the last finished minute
    assert set(series.index.to_series().diff().dropna()) == {pd.Timedelta(minutes=5)}
    # Each point is the mean of the five minutes ending at its label: (53, 58] → 54..58.
    assert series.iloc[-1] == pytest.approx(56.0)
    assert series.iloc[-2] == pytest.approx(51.0)
    assert series.index.max() <= pd.Timestamp(now)


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        pytest.param(T0 - MINUTE, T0 - 60 * MINUTE, T0 + 60 * MINUTE, id="clock-before-trace"),
        pytest.param(
            T0 + 60 * MINUTE, T0 + 3 * 60 * MINUTE, T0 + 4 * 60 * MINUTE, id="after-trace"
        ),
        pytest.param(
            T0 + 60 * MINUTE, T0 + 70 * MINUTE, T0 + 80 * MINUTE, id="window-in-the-future"
        ),
    ],
)
def test_empty_window_is_an_error_not_zero(
    trace_file: Path, now: datetime, start: datetime, end: datetime
) -> None:
    source = source_at(trace_file, now)
    with pytest.raises(MetricsError) as caught:
        source.demand(QUERY, start, end, MINUTE)
    assert caught.value.kind == "empty"
    assert caught.value.query == QUERY


def test_read_trace_opens_gzip_compressed_traces(trace_file: Path, tmp_path: Path) -> None:
    """The bundled traces ship as .csv.gz: read as the same series as the plain file."""
    packed = tmp_path / "trace.csv.gz"
    packed.write_bytes(gzip.compress(trace_file.read_bytes()))
    pd.testing.assert_series_equal(read_trace(packed), read_trace(trace_file))


def test_the_bundled_nasa_trace_is_whole() -> None:
    """27.6 days of minutes, as its README says: a truncated copy would skew every bench."""
    trace = read_trace(NASA)
    assert len(trace) == 39_692
    assert trace.index[0] == pd.Timestamp("1995-07-01T04:00:00Z")
    assert trace.mean() * 60 == pytest.approx(47.7, abs=0.05)


def test_a_trace_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO held `validate` and the start for ever, waiting on a writer (and a device
    such as /dev/zero was read until memory ran out)."""
    path = tmp_path / "trace.csv"
    os.mkfifo(path)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            read_trace(path)
        except BaseException as exc:
            raised.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "read_trace is waiting on the FIFO"
    assert isinstance(raised[0], ValueError)
    assert str(raised[0]) == f"{path}: not a regular file (a folder, a FIFO or a device)"
