"""Bad input: every failure is a ConfigError or a MetricsError, never another exception,
and never a scaling action.

Extends tests/autoscaler/test_loader.py (which damages the text of a config) with
damage to its structure, random bytes, the overrides file, and the Prometheus answer
parsing (series_from_matrix, check_demand, PrometheusSource against the query_range
double, and the tick on whatever comes out of it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from autoscaler.config.loader import load_config, load_overrides
from autoscaler.config.metrics_source import PrometheusMetrics
from autoscaler.config.problems import ConfigError
from autoscaler.config.schema import Config
from autoscaler.metrics import MetricsError, check_demand, series_from_matrix
from autoscaler.metrics_prometheus import PrometheusSource
from autoscaler.overrides import OverridesFile
from tests.autoscaler.config.test_loader import BASE, OVERRIDES
from tests.autoscaler.test_tick import START, Harness
from tests.doubles.prometheus_server import PrometheusApiDouble, Reply

FUZZ = settings(
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["10m", "-5m", "1e400", "NaN", "+Inf", "mon-fri", "25:00", "0", ""])
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)


def paths(data: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from paths(value, (*prefix, i))


def damaged(data: Any, path: tuple, action: str, value: Any) -> Any:
    """A copy of `data` with the value at `path` replaced, deleted or wrapped in a list."""
    if not path:
        return value
    copy = json.loads(json.dumps(data, default=str))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = value
    return copy


def base_data(text: str) -> Any:
    return json.loads(json.dumps(yaml.safe_load(text), default=str))


CONFIG_DATA = base_data(BASE)
OVERRIDES_DATA = base_data(OVERRIDES)


def fuzz_file(tmp_path: Path, base: Any, data: st.DataObject) -> Path:
    path = data.draw(st.sampled_from(list(paths(base))), label="path")
    actions = ["replace", "delete", "wrap"] if path else ["replace"]
    action = data.draw(st.sampled_from(actions), label="action")
    value = data.draw(json_like, label="value")
    target = tmp_path / "fuzz.yaml"
    target.write_text(yaml.safe_dump(damaged(base, path, action, value)), encoding="utf-8")
    return target


@FUZZ
@given(data=st.data())
def test_config_with_any_value_anywhere_loads_or_is_a_config_error(
    tmp_path: Path, data: st.DataObject
) -> None:
    path = fuzz_file(tmp_path, CONFIG_DATA, data)
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as exc:
        assert exc.problems and all(p.file == path for p in exc.problems)
        assert "Traceback" not in str(exc)


@FUZZ
@given(data=st.data())
def test_overrides_with_any_value_anywhere_load_or_are_a_config_error(
    tmp_path: Path, data: st.DataObject
) -> None:
    path = fuzz_file(tmp_path, OVERRIDES_DATA, data)
    try:
        assert isinstance(load_overrides(path), OverridesFile)
    except ConfigError as exc:
        assert exc.problems and all(p.file == path for p in exc.problems)


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bytes_are_a_config_error(tmp_path: Path, raw: bytes) -> None:
    for loader in (load_config, load_overrides):
        path = tmp_path / "random.yaml"
        path.write_bytes(raw)
        try:
            loader(path)
        except ConfigError as exc:
            assert exc.problems


# ---- Prometheus answers ----------------------------------------------------------------

NOW = START
stamps = st.one_of(
    st.sampled_from([1e20, -1e20, math.inf, math.nan, "1e400", "NaN", 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**15), 10**15),
    st.just(NOW.timestamp()),
    st.integers(0, 120).map(lambda m: NOW.timestamp() - 60 * m),
    st.text(max_size=6),
    st.none(),
)
sample_values = st.one_of(
    st.sampled_from(["1.5", "0", "-3", "NaN", "+Inf", "-Inf", "1e400", "", "x"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.floats(allow_nan=True),
    json_like,
)
pairs = st.one_of(st.tuples(stamps, sample_values).map(list), json_like)
series_items = st.fixed_dictionaries(
    {"metric": st.just({}), "values": st.lists(st.tuples(stamps, sample_values).map(list))}
)
matrices = st.one_of(
    st.lists(series_items, min_size=1, max_size=1),
    json_like,
    st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"metric": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)},
                optional={"values": st.one_of(st.lists(pairs, max_size=8), json_like)},
            ),
            json_like,
        ),
        max_size=3,
    ),
)


def parse(result: Any) -> pd.Series | MetricsError:
    try:
        series = series_from_matrix("q", result)
        return check_demand(series, NOW, timedelta(minutes=5))
    except MetricsError as exc:
        return exc


@settings(database=None, deadline=None, max_examples=600)
@given(result=matrices)
@example(result=[{"metric": {}, "values": [["0\x1f", "1.5"]]}])  # once a ValueError
def test_any_matrix_parses_or_is_a_metrics_error(result: Any) -> None:
    outcome = parse(result)
    if isinstance(outcome, pd.Series):
        assert not outcome.empty
        assert all(math.isfinite(v) and v >= 0 for v in outcome.to_numpy())


class FixedSeries:
    def __init__(self, outcome: pd.Series | MetricsError) -> None:
        self.outcome = outcome

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        if isinstance(self.outcome, MetricsError):
            raise self.outcome
        return self.outcome


@FUZZ
@given(result=matrices)
def test_the_tick_on_any_matrix_never_scales_on_bad_data(tmp_path: Path, result: Any) -> None:
    h = Harness(tmp_path, rps=10.0)
    h.fleet.ready_at = h.fleet.ready_at * 5  # 10 nodes: room to shrink, if it ever tried
    outcome = parse(result)
    h.ticker.metrics = FixedSeries(outcome)  # type: ignore[assignment]
    tick = h.ticker.tick(NOW, h.state, OverridesFile())
    assert tick.decision is not None
    if isinstance(outcome, MetricsError):
        assert tick.errors["metrics"].startswith(outcome.kind)
        assert tick.decision.desired == 10 and not tick.acted and h.fleet.writes == 0


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusApiDouble]:
    with PrometheusApiDouble([Reply()]) as double:
        yield double


envelopes = st.one_of(
    json_like,
    st.fixed_dictionaries(
        {"status": st.sampled_from(["success", "error", None, 1])},
        optional={
            "data": st.one_of(
                json_like,
                st.fixed_dictionaries(
                    {"resultType": st.sampled_from(["matrix", "vector", "scalar"])},
                    optional={"result": matrices},
                ),
            ),
            "error": json_like,
        },
    ),
)


@FUZZ
@given(
    body=st.one_of(envelopes.map(lambda b: json.dumps(b).encode()), st.binary(max_size=60)),
    status=st.sampled_from([200, 200, 200, 400, 404, 422, 500, 503]),
)
def test_prometheus_source_on_any_answer_gives_a_series_or_a_metrics_error(
    prometheus: PrometheusApiDouble, body: bytes, status: int
) -> None:
    prometheus.replies = [Reply(status=status, body=body)]
    source = PrometheusSource(PrometheusMetrics(url=prometheus.url, timeout=timedelta(seconds=2)))
    source._client._session.adapters["http://"].max_retries.total = 0  # type: ignore[attr-defined]
    try:
        series = source.demand("q", NOW - timedelta(hours=1), NOW, timedelta(minutes=1))
        assert isinstance(series, pd.Series)
        check_demand(series, NOW, timedelta(minutes=5))
    except MetricsError as exc:
        assert exc.kind in ("bad_response", "empty", "nan", "stale", "ambiguous")
    finally:
        source.close()
