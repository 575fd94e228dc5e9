"""Each pool's gauges, made at scrape time from what its ticks saw (prometheus-client's own
exposition of a real registry)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest

from autoscaler.policy import Decision
from autoscaler.pool_gauges import PoolGauges
from autoscaler.sizing import Sizing
from autoscaler.tick_result import TickResult
from backends.base import FleetState
from predictors import Calibration, Forecast

START = datetime(2026, 12, 4, 10, tzinfo=UTC)


def forecast_from(at: datetime, level: float, calibration: Calibration | None = None) -> Forecast:
    times = pd.date_range(at + timedelta(minutes=1), periods=10, freq="1min", tz="UTC")
    point = np.full(10, level)
    return Forecast(times, point, point * 1.5, "seasonal", calibration=calibration)


def scraped(gauges: PoolGauges) -> str:
    registry = CollectorRegistry()
    registry.register(gauges)
    return generate_latest(registry).decode()


def sample(body: str, name: str, pool: str = "ocr") -> float | None:
    prefix = f'{name}{{pool="{pool}"}} '
    for line in body.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def test_a_tick_that_could_not_read_the_fleet_leaves_its_counts_as_they_were() -> None:
    gauges = PoolGauges()
    decision = Decision(START, 4, 6, 6)
    gauges.record(TickResult("ocr", START, FleetState(4, 3, 1), Sizing(5.0), decision))
    gauges.record(TickResult("ocr", START + timedelta(minutes=1), None, Sizing(None), None))
    body = scraped(gauges)
    assert sample(body, "autoscaler_pool_current_nodes") == 4.0
    assert sample(body, "autoscaler_pool_ready_nodes") == 3.0
    assert sample(body, "autoscaler_pool_pending_nodes") == 1.0
    assert sample(body, "autoscaler_pool_desired_nodes") == 6.0
    assert sample(body, "autoscaler_pool_demand_requests_per_second") == 5.0
    assert sample(body, "autoscaler_pool_forecast_requests_per_second") is None  # none yet


def test_forecast_errors_are_scored_even_when_ticks_come_faster_than_scrapes() -> None:
    """Each tick's demand is scored against the forecast before it: a tick whose previous
    forecast covered it sets the error, and a later one that was not covered (a forecast
    older than SCORED_WITHIN) leaves it, whether or not a scrape came between them."""
    for scrape_between in (False, True):
        gauges = PoolGauges()
        gauges.record(TickResult("ocr", START, None, Sizing(2.0, forecast_from(START, 7.0)), None))
        at = START + timedelta(minutes=3)
        gauges.record(TickResult("ocr", at, None, Sizing(10.0, forecast_from(at, 9.0)), None))
        if scrape_between:
            assert (
                sample(scraped(gauges), "autoscaler_pool_forecast_abs_error_requests_per_second")
                == 3.0
            )
        far = at + timedelta(hours=2)  # past the previous forecast's steps: not scored
        gauges.record(TickResult("ocr", far, None, Sizing(50.0, forecast_from(far, 1.0)), None))
        body = scraped(gauges)
        assert sample(body, "autoscaler_pool_forecast_abs_error_requests_per_second") == 3.0
        assert sample(body, "autoscaler_pool_demand_requests_per_second") == 50.0
        assert sample(body, "autoscaler_pool_forecast_upper_requests_per_second") == 1.5


def test_the_budget_spent_stays_until_a_calibration_measures_it_again() -> None:
    gauges = PoolGauges()
    measured = Calibration(1.2, "forecast", 0.01, budget_spent=0.4)
    gauges.record(
        TickResult("ocr", START, None, Sizing(1.0, forecast_from(START, 1, measured)), None)
    )
    assert sample(scraped(gauges), "autoscaler_pool_loop_margin_floor_ratio") is None
    later = Calibration(0.9, "static", 0.01, floor=0.85)
    gauges.record(TickResult("ocr", START, None, Sizing(1.0, forecast_from(START, 1, later)), None))
    body = scraped(gauges)
    assert sample(body, "autoscaler_pool_error_budget_spent_ratio") == 0.4
    assert sample(body, "autoscaler_pool_loop_margin_ratio") == 0.9
    assert sample(body, "autoscaler_pool_loop_margin_floor_ratio") == 0.85
    assert 'autoscaler_pool_policy{policy="static",pool="ocr"} 1.0' in body
    assert 'autoscaler_pool_policy{policy="forecast",pool="ocr"} 0.0' in body


def test_scrapes_while_ticks_record_new_pools_see_whole_pools() -> None:
    """A scrape runs on the server's thread while the daemon's records pools: neither
    fails, and every pool a scrape shows has all its gauges."""
    gauges = PoolGauges()
    done = threading.Event()
    failures: list[BaseException] = []

    def ticks() -> None:
        try:
            for n in range(3000):
                sizing = Sizing(1.0, forecast_from(START, 2.0))
                gauges.record(TickResult(f"p{n}", START, FleetState(1, 1, 0), sizing, None))
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=ticks)
    thread.start()
    while not done.is_set():
        body = scraped(gauges)
        current = body.count("autoscaler_pool_current_nodes{")
        assert current == body.count("autoscaler_pool_forecast_upper_requests_per_second{")
    thread.join()
    assert not failures
    assert scraped(gauges).count("autoscaler_pool_current_nodes{") == 3000


def test_keep_forgets_every_other_pool() -> None:
    gauges = PoolGauges()
    for pool in ("ocr", "llm"):
        gauges.record(TickResult(pool, START, FleetState(2, 2, 0), Sizing(1.0), None))
    gauges.keep({"llm"})
    body = scraped(gauges)
    assert sample(body, "autoscaler_pool_current_nodes", "llm") == 2.0
    assert 'pool="ocr"' not in body
