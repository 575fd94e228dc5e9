"""The daily digest's figures against a day computed by hand.

The day (2026-11-26, UTC): demand 10 req/s every minute but 12:00, when it is 20 req/s;
5 req/s per node, target utilization 0.8, 3 s latency target, 10-minute boot, 15-minute
horizon, 2.5 per node-hour. The fleet holds 3 nodes, goes to 4 at 18:00 (an override
'evening batch' raises the floor; ready at 18:10) and back to 3 at 20:00. Every tick
forecasts a peak of 12 req/s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from autoscaler.digest import DigestSettings, pool_digest

DAY = datetime(2026, 11, 26, tzinfo=UTC)
END = DAY + timedelta(days=1)
SETTINGS = DigestSettings(
    per_node_rps=5.0,
    target_utilization=0.8,
    min_nodes=1,
    boot_time=timedelta(minutes=10),
    horizon=timedelta(minutes=15),
    latency_target_s=3.0,
    price_per_node_hour=2.5,
)
OVERRIDE = "raised to override min 4 ('evening batch', until 2026-11-26T20:00:00+00:00)"


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def day_demand() -> pd.Series:
    minutes = pd.date_range(DAY, END, freq="1min", inclusive="left")
    return pd.Series(np.where(minutes == at(12), 20.0, 10.0), index=minutes)


def day_records() -> list[dict[str, Any]]:
    records = []
    for i in range(1440):
        now = DAY + timedelta(minutes=i, seconds=2)  # ticks land a little after the minute
        evening = at(18) <= now < at(20)
        current = 4 if at(18, 1) <= now < at(20, 1) else 3
        desired = 4 if evening else 3
        ready = 4 if at(18, 10) <= now < at(20, 1) else 3
        action = "scale_up" if desired > current else "scale_down" if desired < current else "none"
        records.append(
            {
                "time": now.isoformat().replace("+00:00", "Z"),
                "pool": "ocr",
                "demand_rps": 10.0,
                "forecast_rps": 12.0,
                "current": current,
                "ready": ready,
                "desired": desired,
                "action": action,
                "acted": action != "none",
                "reasons": [OVERRIDE] if evening else ["forecast needs 3 nodes"],
                "errors": {},
            }
        )
    records.append({**records[0], "pool": "other", "current": 99, "desired": 99})
    return records


def test_the_digest_of_a_hand_computed_day() -> None:
    digest = pool_digest("ocr", day_records(), day_demand(), SETTINGS, DAY, END)
    # 3 nodes × 1440 min + 1 more for 18:00-19:59 = 4440 node-minutes
    assert digest.fleet.node_hours == pytest.approx(74.0)
    assert digest.fleet.cost == pytest.approx(185.0)
    # 12:00: 20 req/s into 15 req/s; the queue passes 3 s × 15 = 45 requests after 9 s:
    # 51 s × 20 = 1020 late, 300 left waiting. 12:01: it drains at 5/s and is under 45
    # after (300 - 45) / 5 = 51 s: 51 s × 10 = 510 late.
    assert digest.late_requests == pytest.approx(1530.0)
    assert digest.late_minutes == 2
    assert digest.requests == pytest.approx(1439 * 600 + 1200)
    assert digest.service_level == pytest.approx(1 - 1530 / 864_600)
    assert (digest.minutes_with_data, digest.minutes) == (1440, 1440)
    # Ticks 00:00-23:45 have their horizon inside the day; 11:45-11:59 see the 20 req/s peak.
    assert digest.forecasts_scored == 1426
    assert digest.forecast_wape == pytest.approx((1411 * 2 + 15 * 8) / (1411 * 10 + 15 * 20))
    assert digest.forecast_bias == pytest.approx((1411 * 2 - 15 * 8) / (1411 * 10 + 15 * 20))
    assert (digest.scale_ups, digest.scale_downs, digest.would_actions) == (1, 1, 0)
    assert digest.overrides == {"evening batch": 120}
    # Static: ceil(20 / (5 × 0.8)) = 5 nodes all day.
    assert digest.peak_rps == 20.0 and digest.static_nodes == 5
    assert digest.static is not None and digest.static.node_hours == pytest.approx(120.0)
    assert digest.static.cost == pytest.approx(300.0)
    # Reactive: ceil(10 / 4) = 3 nodes, 5 for the five minutes after it saw 20 req/s (12:01-
    # 12:05); its extra nodes are gone before they boot, so it is as late as the fleet.
    assert digest.reactive is not None
    assert digest.reactive.node_hours == pytest.approx((1440 * 3 + 5 * 2) / 60)
    assert digest.reactive.cost == pytest.approx(2.5 * 4330 / 60)
    assert digest.reactive.late_share == pytest.approx(1530 / 864_600)
    frame = digest.frame
    assert frame.loc[at(18), "nodes"] == 4 and frame.loc[at(17, 59), "nodes"] == 3
    assert frame.loc[at(18, 5), "capacity"] == 15.0 and frame.loc[at(18, 10), "capacity"] == 20.0


def test_two_records_of_one_time_are_read_in_log_order() -> None:
    """A replayed day run twice into one log (the demo's config changed between runs), or
    two daemons for a moment: the same tick time twice, different records. Each minute
    takes the last logged, as for any two ticks in one minute."""
    records = day_records()
    again = [{**r, "current": 5, "ready": 5, "action": "none", "acted": False} for r in records]
    digest = pool_digest("ocr", records + again, day_demand(), SETTINGS, DAY, END)
    assert digest.fleet.node_hours == pytest.approx(5 * 24)


def test_minutes_without_demand_are_not_zero_load() -> None:
    demand = day_demand()
    demand[at(3) : at(4) - timedelta(minutes=1)] = np.nan  # an hour of no data
    digest = pool_digest("ocr", day_records(), demand, SETTINGS, DAY, END)
    assert digest.minutes_with_data == 1380
    assert digest.requests == pytest.approx(1379 * 600 + 1200)
    assert digest.late_requests == pytest.approx(1530.0)
    assert digest.reactive is not None  # held at the last known demand: still 3 nodes
    assert digest.reactive.node_hours == pytest.approx((1440 * 3 + 5 * 2) / 60)


@pytest.mark.parametrize("reading", [np.inf, -np.inf, -10.0])
def test_minutes_of_no_reading_are_not_load(reading: float) -> None:
    """Prometheus answers +Inf for a rate over a zero and a difference of rates can go
    negative, which the daemon refuses as demand (metrics.check_demand). In the digest an
    infinite minute raised 'cannot size a fleet for demand inf', failing the day's digest
    of every pool (and `autoscaler report`), and a negative one was read as less than no
    load (the reactive fleet's late share below zero). Both are minutes without data."""
    demand = day_demand()
    demand[at(3) : at(4) - timedelta(minutes=1)] = reading
    digest = pool_digest("ocr", day_records(), demand, SETTINGS, DAY, END)
    assert digest.minutes_with_data == 1380
    assert digest.requests == pytest.approx(1379 * 600 + 1200)
    assert digest.late_requests == pytest.approx(1530.0)
    assert digest.peak_rps == 20.0 and digest.static_nodes == 5
    assert digest.reactive is not None and digest.reactive.late_share is not None
    assert digest.reactive.late_share >= 0
    assert digest.forecasts_scored == 1426 - 46


def test_no_price_gives_node_hours_without_cost_and_an_empty_log_gives_no_fleet() -> None:
    free = DigestSettings(**{**SETTINGS.__dict__, "price_per_node_hour": None})
    digest = pool_digest("ocr", day_records(), day_demand(), free, DAY, END)
    assert digest.fleet.cost is None and digest.fleet.node_hours == pytest.approx(74.0)
    empty = pool_digest("ocr", [], day_demand(), SETTINGS, DAY, END)
    assert empty.fleet.node_hours == 0.0 and empty.forecast_wape is None


def test_each_forecast_is_scored_on_the_known_minutes_of_its_own_horizon() -> None:
    """A tick's horizon is the minutes after its own, up to the horizon: an hour without
    demand leaves out the 46 ticks whose whole horizon falls in it, not the ticks whose
    horizon reaches past it; a 90-second horizon reads one minute, and a tick is scored
    until its horizon reaches the end of the day."""
    demand = day_demand()
    demand[at(3) : at(4) - timedelta(minutes=1)] = np.nan
    digest = pool_digest("ocr", day_records(), demand, SETTINGS, DAY, END)
    assert digest.forecasts_scored == 1426 - 46
    assert digest.forecast_wape == pytest.approx((1365 * 2 + 15 * 8) / (1365 * 10 + 15 * 20))
    short = DigestSettings(**{**SETTINGS.__dict__, "horizon": timedelta(seconds=90)})
    digest = pool_digest("ocr", day_records(), day_demand(), short, DAY, END)
    assert digest.forecasts_scored == 1439
    assert digest.forecast_bias == pytest.approx((1438 * 2 - 8) / (1438 * 10 + 20))


def test_a_minute_without_demand_does_not_drain_the_queue() -> None:
    """12:00 at 20 req/s leaves 300 requests waiting on 3 nodes (15 req/s); 12:01 has no
    reading. Fed as no requests it drained them, and 12:02-12:03 read on time. Held at
    the last known 20 req/s (as the reactive fleet's queue holds it), the queue ends 12:01
    at 600: 12:02 drains at 5/s and stays over 45 (3 s × 15) all minute, 600 late, 300
    left; 12:03 is under 45 after (300 - 45) / 5 = 51 s: 510 late. 12:01 itself is left
    out of the counts."""
    demand = day_demand()
    demand[at(12, 1)] = np.nan
    digest = pool_digest("ocr", day_records(), demand, SETTINGS, DAY, END)
    assert digest.minutes_with_data == 1439
    assert digest.requests == pytest.approx(1438 * 600 + 1200)
    assert digest.late_requests == pytest.approx(1020 + 600 + 510)
    assert digest.late_minutes == 3


def test_the_fleet_before_a_pools_first_tick_is_the_count_it_found() -> None:
    """A pool added at 14:00 (README: its fleet before then taken from its first tick,
    'the count its first tick found'), whose first tick scales 2 -> 5 nodes: 14 hours at
    2 nodes, then 5 (ready 2 until 14:10). Its first tick's order read back to midnight
    as 5 nodes: 120 node-hours where it had 78."""
    records = []
    for i in range(600):
        now = at(14, i) + timedelta(seconds=2)
        first = i == 0
        records.append(
            {
                "time": now.isoformat(),
                "pool": "ocr",
                "current": 2 if first else 5,
                "ready": 2 if i < 10 else 5,
                "desired": 5,
                "action": "scale_up" if first else "none",
                "acted": first,
            }
        )
    digest = pool_digest("ocr", records, day_demand(), SETTINGS, DAY, END)
    assert digest.fleet.node_hours == pytest.approx((14 * 60 * 2 + 10 * 60 * 5) / 60)
    frame = digest.frame
    assert frame.loc[at(13, 59), "nodes"] == 2 and frame.loc[at(14), "nodes"] == 5
    assert frame.loc[at(13, 59), "ready"] == 2 and frame.loc[at(14, 10), "ready"] == 5
