"""Class 2 (issue 17): metrics answers that look valid but are not, through the whole tick.

The real PrometheusSource against the scripted query_range double
(tests.doubles.prometheus_server.PrometheusApiDouble, Prometheus's documented JSON
envelope). Every case would read as low or zero load if let through; each must hold
the fleet, once the demand was seen, with a reason that says what was wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from autoscaler import metrics_answer
from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.metrics import MetricsError
from autoscaler.metrics_prometheus import PrometheusSource
from tests.autoscaler.test_tick import FlatDemand
from tests.doubles.prometheus_server import PrometheusApiDouble, Reply, matrix_reply
from tests.faults.test_metrics_faults import (
    FAULT_TICKS,
    STEADY_NODES,
    PrometheusHarness,
    run_episode,
    samples,
)
from tests.support import read_decisions


def stamps(now: datetime, count: int, end_offset: timedelta = timedelta(0)) -> list[float]:
    end = pd.Timestamp(now - end_offset)
    return [(end - pd.Timedelta(minutes=count - 1 - i)).timestamp() for i in range(count)]


def raw(result_type: str, result: object) -> Reply:
    body = {"status": "success", "data": {"resultType": result_type, "result": result}}
    return Reply(body=json.dumps(body).encode())


def low_values(now: datetime, value: object) -> Reply:
    """60 samples whose value is `value` as JSON (not the string Prometheus sends)."""
    return raw("matrix", [{"metric": {}, "values": [[t, value] for t in stamps(now, 60)]}])


def duplicated(now: datetime) -> Reply:
    times = stamps(now, 60)
    values = [[t, "10"] for t in times] + [[times[-1], "0"]]
    return raw("matrix", [{"metric": {}, "values": values}])


def partial(now: datetime) -> Reply:
    """Thanos's partial response (a store down): status "success", the series it could
    collect, and `warnings`, which Prometheus's API documents for data not all collected."""
    body = json.loads(samples(now, ["2"] * 60).body)
    body["warnings"] = ["receive series from store 10.0.0.7:10901: rpc error: unavailable"]
    return Reply(body=json.dumps(body).encode())


def victoria_partial(now: datetime) -> Reply:
    """A VictoriaMetrics cluster's vmselect with a vmstorage node down (it answers what the
    others hold by default): status "success", no warnings, and its own `isPartial: true`
    beside `stats`, as its query_range response template writes them."""
    body = json.loads(samples(now, ["2"] * 60).body)
    body |= {"isPartial": True, "stats": {"seriesFetched": "3", "executionTimeMsec": 4}}
    return Reply(body=json.dumps(body).encode())


ODD_ANSWERS: dict[str, tuple[Callable[[datetime], Reply], str]] = {
    "samples after the query's end": (
        lambda now: samples(now, ["0"] * 60, end_offset=-timedelta(minutes=30)),
        "after the query's end",
    ),
    "one sample after the end": (
        lambda now: samples(now, ["10"] * 59 + ["0"], end_offset=-timedelta(minutes=3)),
        "after the query's end",
    ),
    "same time twice, different values": (duplicated, "twice"),
    "a partial answer with warnings": (partial, "store 10.0.0.7:10901"),
    "a VictoriaMetrics partial answer": (victoria_partial, "isPartial"),
    "JSON false as a value": (lambda now: low_values(now, False), "not a number"),
    "JSON null as a value": (lambda now: low_values(now, None), "not a number"),
    "a list as a value": (lambda now: low_values(now, [0]), "not a number"),
    "digits with underscores": (lambda now: low_values(now, "0_0"), "not a number"),
    "scalar result": (lambda now: raw("scalar", [now.timestamp(), "2"]), "scalar"),
    "string result": (lambda now: raw("string", [now.timestamp(), "0"]), "string"),
    "vector result": (
        lambda now: raw("vector", [{"metric": {}, "value": [now.timestamp(), "0"]}]),
        "vector",
    ),
    "no resultType": (
        lambda now: Reply(
            body=json.dumps(
                {"status": "success", "data": {"result": [[now.timestamp(), "0"]]}}
            ).encode()
        ),
        "resultType",
    ),
    # Half an emoji: a JSON escape of a lone surrogate (as JavaScript's JSON.stringify
    # writes a string cut mid-character), which UTF-8 cannot carry; writing the decision
    # log's line raised out of the tick, and every pool after it went unticked.
    "error text cut mid-character": (
        lambda now: Reply(body=b'{"status": "error", "error": "query cut at \\ud83d"}'),
        "query cut at",
    ),
}


@pytest.mark.parametrize("case", sorted(ODD_ANSWERS))
def test_odd_answer_holds_the_fleet_and_says_what_was_wrong(tmp_path: Path, case: str) -> None:
    fault, words = ODD_ANSWERS[case]
    with PrometheusApiDouble([matrix_reply()]) as double:
        h = PrometheusHarness(tmp_path, double.url)
        faulty = run_episode(h, double, fault)
    for result in faulty:
        error = result.errors.get("metrics", "")
        assert error.startswith("bad_response:") and words in error, (case, result.errors)
        assert result.decision is not None and result.decision.desired == STEADY_NODES
        assert not result.acted
    assert h.fleet.read().desired == STEADY_NODES and h.fleet.writes == 1
    assert sum("metrics failing" in t and words in t for t in h.notifier.texts) == 1
    records = read_decisions(h.log_path)[1:]
    assert len(records) == FAULT_TICKS
    assert all(any(words in reason for reason in r["reasons"]) for r in records)


def test_a_warning_about_the_query_itself_is_not_a_partial_answer(tmp_path: Path) -> None:
    """Prometheus 2.50+ puts its PromQL annotations in `warnings` too ("PromQL warning:
    ..."): they say the query is odd, not that data is missing, so the answer reads as
    usual; a partial-data warning beside them still holds (the case above)."""
    with PrometheusApiDouble([matrix_reply()]) as double:
        h = PrometheusHarness(tmp_path, double.url)
        body = json.loads(samples(h.clock.now(), ["10"] * 60).body)
        body["warnings"] = ["PromQL warning: encountered a mix of histograms and floats"]
        double.replies = [Reply(body=json.dumps(body).encode())]
        result = h.tick()
    assert not result.errors and result.decision is not None
    assert result.decision.desired == STEADY_NODES


def test_identical_duplicate_samples_are_one_sample(tmp_path: Path) -> None:
    """The same time twice with the same value is harmless (a retried chunk): kept once."""
    with PrometheusApiDouble([matrix_reply()]) as double:
        h = PrometheusHarness(tmp_path, double.url)
        times = stamps(h.clock.now(), 60)
        double.replies = [
            raw("matrix", [{"metric": {}, "values": [[t, "10"] for t in times + times[-3:]]}])
        ]
        result = h.tick()
    assert not result.errors and result.decision is not None
    assert result.decision.desired == STEADY_NODES


def test_an_answer_over_the_size_cap_is_refused_as_it_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the query_range double (Prometheus's documented JSON envelope): a body past
    MAX_ANSWER_BYTES is a bad response, not read whole (a huge answer took the daemon's
    memory); the same answer under the cap is demand."""
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    values = [[t, "12.5"] for t in stamps(now, 3000)]
    body = raw("matrix", [{"metric": {}, "values": values}])
    monkeypatch.setattr(metrics_answer, "MAX_ANSWER_BYTES", len(body.body) - 1)
    with PrometheusApiDouble([body]) as double:
        config = PrometheusMetrics(url=double.url, timeout=timedelta(seconds=5))
        with PrometheusSource(config) as source:
            with pytest.raises(MetricsError) as caught:
                source.demand("up", now - timedelta(hours=50), now, timedelta(minutes=1))
            assert caught.value.kind == "bad_response"
            assert "MiB, more than a range query of one series gives" in str(caught.value)
            monkeypatch.setattr(metrics_answer, "MAX_ANSWER_BYTES", len(body.body))
            demand = source.demand("up", now - timedelta(hours=50), now, timedelta(minutes=1))
    assert len(demand) == 3000 and (demand == 12.5).all()


def nested(now: datetime) -> Reply:
    """JSON nested deeper than Python's json module recurses (a 200 kB body)."""
    return Reply(body=b"[" * 100_000 + b"]" * 100_000)


def integer_past_a_float(now: datetime) -> Reply:
    """A value written as a JSON integer no float holds (json reads it as a Python int)."""
    times = stamps(now, 60)
    values = ", ".join(f'[{t}, "10"]' for t in times[:-1]) + f", [{times[-1]}, 1{'0' * 400}]"
    text = '{"status": "success", "data": {"resultType": "matrix", "result": '
    return Reply(body=f'{text}[{{"metric": {{}}, "values": [{values}]}}]}}}}'.encode())


@pytest.mark.parametrize("fault", [nested, integer_past_a_float])
def test_an_answer_python_cannot_hold_is_a_bad_response(
    tmp_path: Path, fault: Callable[[datetime], Reply]
) -> None:
    """JSON nested past the recursion limit, a number past a float: a bad response (hold the
    demand; the signal missing), never an exception out of the source. They were a
    RecursionError and an OverflowError: the tick's catch-all held the whole pool, and a
    signal or capacity query answered so stopped the scale-up the demand asked for."""
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    with PrometheusApiDouble([fault(now)]) as double:
        config = PrometheusMetrics(url=double.url, timeout=timedelta(seconds=5))
        with PrometheusSource(config) as source, pytest.raises(MetricsError) as caught:
            source.demand("up", now - timedelta(hours=1), now, timedelta(minutes=1))
    assert caught.value.kind == "bad_response"

    class DemandFlatSignalFromDouble:
        def __init__(self, flat: FlatDemand, prometheus: PrometheusSource) -> None:
            self.flat, self.prometheus = flat, prometheus

        def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
            source = self.prometheus if query == "queue" else self.flat
            return source.demand(query, start, end, step)

    signal = {"name": "backlog", "kind": "queue_depth", "query": "queue", "drain_within": "60s"}
    with PrometheusApiDouble([fault(now)]) as double:
        h = PrometheusHarness(tmp_path, double.url, signals=[signal])
        h.ticker.metrics = DemandFlatSignalFromDouble(FlatDemand(h.clock, 20.0), h.ticker.metrics)
        result = h.tick()
    assert "tick" not in result.errors and "bad_response" in result.errors["signals"]
    assert result.decision is not None and result.acted and h.fleet.read().desired == 25
